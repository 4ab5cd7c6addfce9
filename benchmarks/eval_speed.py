"""Seconds per image of the evaluate stage's forward passes: one image at a time against the batches it uses.

    python benchmarks/eval_speed.py                          # models/adapted.pt on target val
    python benchmarks/eval_speed.py --checkpoint models/oracle.pt --repeats 5

The same computation both ways: the checkpoint's main-head probabilities at label resolution for every
target val image (params.yaml's lists and target size), forwarded either one image at a time in the
default memory format (how `evaluate` ran before) or ``EVAL_BATCH`` images at a time as a channels-last
tensor (``globallocal.evaluation.metrics.evaluate`` today). Reading the images is done once, before the
timing. Repeats alternate the two (ABAB...), so a machine that gets busier slows both alike; each figure
is the median over repeats after a warm-up round. The last line gives the largest difference between the
two ways' probabilities and how many pixels' predicted class differs (floating-point summation order).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from globallocal import config
from globallocal.checkpoints import model_from_checkpoint
from globallocal.data.file_lists import TARGET_VAL_LIST, read_list
from globallocal.data.loading import target_dataset
from globallocal.evaluation.metrics import EVAL_BATCH, class_map, probabilities


@torch.inference_mode()
def one_at_a_time(model, items: list[dict]) -> list[torch.Tensor]:
    return [probabilities(model(item["image"][None])[1], item["label"].shape[-2:]) for item in items]


@torch.inference_mode()
def batched(model, items: list[dict]) -> list[torch.Tensor]:
    out = []
    for start in range(0, len(items), EVAL_BATCH):
        chunk = items[start:start + EVAL_BATCH]
        images = torch.stack([item["image"] for item in chunk]).contiguous(memory_format=torch.channels_last)
        _, main = model(images)
        out += [probabilities(logits[None].contiguous(), item["label"].shape[-2:]) for item, logits in zip(chunk, main)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/adapted.pt"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = config.load_validated_params().data
    model, _ = model_from_checkpoint(args.checkpoint)
    model.eval()
    names = read_list(data.lists_dir / TARGET_VAL_LIST)
    dataset = target_dataset(data.target_root, "val", names, data.target_size, model.input_normalization,
                             with_labels=True, resize_label=False)
    items = [dataset[index] for index in range(len(dataset))]
    ways = {"one at a time": one_at_a_time, f"batches of {EVAL_BATCH}, channels-last": batched}
    seconds = {name: [] for name in ways}
    for round_ in range(args.repeats + 1):
        for name, way in ways.items():
            started = time.perf_counter()
            way(model, items)
            if round_:
                seconds[name].append(time.perf_counter() - started)
    print(f"{args.checkpoint}, {len(items)} target val images at {data.target_size[0]}x{data.target_size[1]}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} repeats:")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"  {name:32s} {1000 * median / len(items):7.1f} ms per image")
    first, second = medians.values()
    print(f"  ratio (one at a time / batched): {first / second:.2f}x")
    single, batch = one_at_a_time(model, items), batched(model, items)
    largest = max(float((a - b).abs().max()) for a, b in zip(single, batch))
    flipped = sum(int((class_map(a) != class_map(b)).sum()) for a, b in zip(single, batch))
    pixels = sum(a[0, 0].numel() for a in single)
    print(f"  largest probability difference {largest:.2e}; predicted class differs at {flipped} of {pixels} pixels")


if __name__ == "__main__":
    main()
