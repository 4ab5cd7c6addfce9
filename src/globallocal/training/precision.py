"""Mixed precision as two small pieces beside the training loop: an autocast context and loss scalers.

``fp32`` changes nothing. ``bf16`` runs convolutions and matrix products in bfloat16 under
``torch.autocast`` (on CUDA, and on CPUs with bfloat16 instructions, where oneDNN has fast kernels);
``fp16`` does the same in float16 on CUDA with a gradient scaler against underflow. Losses, softmax,
self-information and discriminator outputs are always reduced in float32: the loop casts logits to
float32 before any loss.
"""

from __future__ import annotations

import contextlib

import torch

from globallocal.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse float16 on the CPU (no fast kernels, and GradScaler is a CUDA tool)."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError(
            "params key 'train.precision' is 'fp16', which needs a CUDA device; on the CPU use bf16 or fp32"
        )


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context forward passes run in: autocast to bf16/fp16, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler that is active for fp16 only (a pass-through otherwise, same API)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
