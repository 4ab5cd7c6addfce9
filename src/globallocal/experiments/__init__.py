"""Experiment running: the runner (``runner.py``, ``python -m globallocal.experiments``), the DVC queue and
the reuse of finished runs (``queue.py``, ``finished_runs.py``), the paper's main table (``main_table.py``)
and the shift grid's selection rule (``shift_grid.py``)."""
