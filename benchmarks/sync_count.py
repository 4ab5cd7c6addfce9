"""Host synchronisations per training step on CUDA, counted by torch's sync debug mode.

    .venv/bin/python benchmarks/sync_count.py --out reports/syncs.json   # on a CUDA machine
    .venv/bin/python benchmarks/sync_count.py --device cpu --steps 2     # the dry run: nothing to count

The embedded default's adapt step (``training.train_step``) runs ``--steps`` times on the same two
random batches, each step's statistics added to the loop's running means and read every ``--log-every``
steps, as ``training.train`` does. ``torch.cuda.set_sync_debug_mode("warn")`` makes every operation
that waits for the GPU (a ``.item()``, a boolean-mask index, a blocking copy) warn; each warning is
counted for the step it falls in, with the library line that caused it. The first log interval warms
up (optimiser states, cuDNN autotuning, the running means' index tensors) and is reported apart.
On the CPU nothing synchronises: the counts are empty and the run only shows the script works.
"""

from __future__ import annotations

import argparse
import collections
import json
import traceback
import warnings
from pathlib import Path

import torch
from step_speed import batches

from globallocal import config
from globallocal.data.labels import NUM_CLASSES
from globallocal.models import build_model
from globallocal.training.loop import build_train_state, train_step
from globallocal.training.running_means import RunningMeans


def library_line() -> str:
    """The innermost frame of the library (or of this script) on the current stack, as ``file.py:line``."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/globallocal/" in frame.filename:
            return f"{Path(frame.filename).name}:{frame.lineno}"
    return "outside the library"


def count_syncs(params: config.Params, device: torch.device, steps: int, log_every: int) -> dict:
    cfg = params.train_config("adapt", aligned=True)
    data = params.data
    sizes = {"source": data.source_size, "target": data.target_size}
    generator = torch.Generator().manual_seed(0)
    feed = [batches(params.train.batch_size, sizes, generator) for _ in range(2)]
    torch.manual_seed(0)
    state = build_train_state(build_model(**params.model.spec(NUM_CLASSES)).to(device).train(), cfg, NUM_CLASSES)
    running = RunningMeans()
    per_step, lines = [], [collections.Counter() for _ in range(steps)]
    cuda = device.type == "cuda"
    previous = warnings.showwarning

    def record(message, *args, **kwargs) -> None:
        if "synchroniz" in str(message):  # the sync debug mode's warning, not any other
            lines[len(per_step)].update([library_line()])

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            for i in range(steps):
                source, target = feed[i % 2]
                running.add(train_step(state, cfg, source, target, device), state.iteration)
                if state.iteration % log_every == 0:
                    running.read()
                    running.clear()
                per_step.append(sum(lines[i].values()))
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = previous
    measured = range(log_every, steps)  # after the first log interval
    log_steps = [i for i in measured if (i + 1) % log_every == 0]
    other_steps = [i for i in measured if (i + 1) % log_every != 0]
    sources = collections.Counter()
    for i in other_steps:
        sources.update(lines[i])
    return {
        "device": str(device), "steps": steps, "log_every": log_every,
        "syncs_per_step": per_step,
        "mean_syncs_per_other_step": sum(per_step[i] for i in other_steps) / len(other_steps) if other_steps else None,
        "mean_syncs_per_log_step": sum(per_step[i] for i in log_steps) / len(log_steps) if log_steps else None,
        "sources_per_other_step": {line: count / max(len(other_steps), 1) for line, count in sources.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = count_syncs(config.load_validated_params(), torch.device(args.device), args.steps, args.log_every)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
