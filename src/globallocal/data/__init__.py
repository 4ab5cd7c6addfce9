"""Datasets in their real on-disk formats, the label mappings, and the embedded synthetic benchmark."""
