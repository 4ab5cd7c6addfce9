"""What a training step does to use a GPU well, as three small switches beside the loop.

Each is a ``train`` param (params.yaml) with its own figure in ``benchmarks/gpu_check.sh``:

* ``cudnn_benchmark``: cuDNN times its convolution algorithms for each new input shape and keeps the
  fastest (a pipeline trains on two fixed sizes, source and target, so the autotuning pays once).
* ``fused_optimizer``: SGD and Adam update every parameter in one fused CUDA kernel instead of one
  launch per tensor (with an fp16 GradScaler, the fused step also skips the host sync on ``found_inf``).
* ``compile``: ``torch.compile`` of the segmentation network (opt-in: minutes of compilation first).

On the CPU the first two change nothing (the CPU default stays bit-identical); ``compile`` applies on
every device.
"""

from __future__ import annotations

import torch
from torch import nn


def configure_backends(device: torch.device, cudnn_benchmark: bool) -> None:
    """cuDNN autotuning on CUDA when asked (a process-wide switch; the CPU ignores it)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark


def optimizer_options(device: torch.device, fused: bool) -> dict:
    """Extra keyword arguments for ``torch.optim.SGD`` / ``Adam``: ``fused=True`` on CUDA when asked.

    Nothing on the CPU: its default (for-loop) step is what every committed CPU figure was made with.
    """
    return {"fused": True} if fused and device.type == "cuda" else {}


def maybe_compile(model: nn.Module, enabled: bool) -> None:
    """Compile ``model`` in place (``nn.Module.compile``: the state_dict keys stay the same)."""
    if enabled:
        model.compile()
