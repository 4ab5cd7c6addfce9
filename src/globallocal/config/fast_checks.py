"""Checks of params.yaml against the machine that take milliseconds, run by the first stage (``fingerprint``)
and after ``preset apply``: a missing backbone weights file, a missing dataset root, ``device: cuda`` without
a GPU. Found later, they cost the whole data check first (hours on the real datasets)."""

from __future__ import annotations

from pathlib import Path

from globallocal.config.params import Params
from globallocal.errors import UserError
from globallocal.models.efficientnet_weights import PACKAGED_WEIGHTS, packaged_weights_path


def missing_files(params: Params) -> list[str]:
    """A problem line for the weights file and each real dataset root that is not there."""
    problems = []
    weights = params.model.backbone_weights
    if weights is not None and str(weights) == PACKAGED_WEIGHTS:  # the installed package's file, not a path
        try:
            packaged_weights_path()
        except UserError as error:
            problems.append(str(error))
    elif weights is not None and not Path(weights).is_file():
        problems.append(f"params key 'model.backbone_weights' is '{weights}', which is not a file: place the ImageNet "
                        "weights there (nothing can be downloaded) or set it to null to train from scratch")
    if not params.prepare.generate:  # the embedded benchmark's roots are prepare's own outputs
        for key, root in (("data.source_root", params.data.source_root), ("data.target_root", params.data.target_root)):
            if not Path(root).is_dir():
                problems.append(f"params key '{key}' is '{root}', which is not a folder: point it at the dataset "
                                "root (README, \"Real data on a GPU\")")
    return problems


def missing_device(params: Params) -> list[str]:
    """A problem line when ``device`` names CUDA and none is available (torch is imported only then)."""
    if not params.device.startswith("cuda"):
        return []
    import torch

    if torch.cuda.is_available():
        return []
    return [f"params key 'device' is '{params.device}' but no CUDA device is available; use 'auto' or 'cpu'"]


def fast_problems(params: Params) -> list[str]:
    """Every problem the fast checks find, one line each (empty when there is none)."""
    return missing_files(params) + missing_device(params)


def check_fast(params: Params) -> None:
    """Raise one UserError naming every problem ``fast_problems`` finds."""
    problems = fast_problems(params)
    if problems:
        raise UserError("; and ".join(problems))


#: Training iterations above which a CPU run is worth a warning (the paper's 120k take weeks there).
CPU_ITERATION_WARNING = 10_000
#: The stages whose ``iterations`` count towards it.
TRAINED_STAGES = ("pretrain", "adapt", "oracle", "selftrain")


def long_cpu_run(params: Params) -> list[str]:
    """A warning line when the schedule is long and the run would be on the CPU (torch imported only then)."""
    longest = max(TRAINED_STAGES, key=lambda stage: getattr(params, stage).iterations)
    iterations = getattr(params, longest).iterations
    if iterations <= CPU_ITERATION_WARNING or params.device.startswith("cuda"):
        return []
    if params.device == "auto":
        import torch

        if torch.cuda.is_available():
            return []
    return [f"{longest}.iterations is {iterations} and the run would be on the CPU (device '{params.device}', no "
            "CUDA device here): at these sizes that takes weeks; run it on a GPU machine, or lower the iterations "
            f"(--set {longest}.iterations=...)"]
