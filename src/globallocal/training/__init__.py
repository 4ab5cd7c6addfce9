"""Training: the one loop (``loop.py``) and its state (``state.py``), a training stage end to end
(``stage.py``), self-training (``selftraining.py``) and AdaBN (``adabn.py``), and the small pieces beside
the loop: running means of the logged statistics, snapshots and resume, data-parallel processes, mixed
precision, and the CUDA speed switches (``acceleration.py``)."""
