"""Configuration: params.yaml parsed once into one typed, validated tree (``params.py``), its sections
(``sections.py``), how a value is declared and checked (``values.py``), how the file is read
(``reading.py``), and the presets that rewrite it (``presets.py``)."""

from globallocal.config.params import (  # noqa: F401  (the package's face)
    TRAINING_STAGES,
    Params,
    known_keys,
    load_params,
    load_validated_params,
    parse,
    validate,
)
