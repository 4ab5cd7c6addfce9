"""Evaluation: the metrics and the protocol (``metrics.py``), scoring any checkpoint file
(``scoring.py``) with the ``evaluate`` command's options (``options.py``), and the local filter's
diagnostics on labelled target images (``local_diagnostics.py``)."""
