"""Where and how reproducibly the code runs: device choice, seeding, and the process's peak memory."""

from __future__ import annotations

import random
import resource

import numpy as np
import torch

from globallocal.errors import UserError

#: ru_maxrss is in KiB on Linux.
KIB_PER_MIB = 1024


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"params key 'device' is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def use_cpu_threads(count: int | str) -> None:
    """``train.cpu_threads``: torch's intra-op CPU threads for this process; ``auto`` leaves torch's default."""
    if count != "auto":
        torch.set_num_threads(count)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; returns a CPU generator for data shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
