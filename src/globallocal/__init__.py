"""globallocal: joint global-local output alignment for domain adaptive semantic segmentation."""

__version__ = "0.1.0"
