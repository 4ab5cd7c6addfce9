"""Output-space alignment: the global families (step 1) and the class-aware local module (step 2)."""
