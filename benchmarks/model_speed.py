"""Seconds per forward+backward pass of a segmentation network, and the process's peak memory.

One iteration = forward, upsampling both heads to the input size, the source segmentation loss
(main + 0.1 * aux cross-entropy on random labels) and backward; no optimiser step.

    python benchmarks/model_speed.py --arch mobilenetv3_large --size 256x128 --batch 2 --iters 10
    python benchmarks/model_speed.py --arch mobilenetv3_small --size 192x108 --output-stride 16 --compile

``--compile`` wraps the network in ``torch.compile`` (inductor) and also prints the first iteration's
seconds, which include the compilation; ``--channels-last`` runs the network and its input NHWC.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from globallocal.models import ARCHITECTURES, BN_PROTOCOLS, build_model
from globallocal.runtime import peak_rss_mib

NUM_CLASSES = 19
#: Weight of the aux head's loss, as in params.yaml (train.lambda_seg_aux).
AUX_LOSS_WEIGHT = 0.1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, default="mobilenetv3_large")
    parser.add_argument("--size", default="256x128", help="input WIDTHxHEIGHT in pixels")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output-stride", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (inductor)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC network and input")
    parser.add_argument("--bn-protocol", choices=BN_PROTOCOLS, default=None,
                        help="default: frozen for ResNet-101, learned for MobileNetV3")
    return parser.parse_args()


def train_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Forward, segmentation loss at input resolution, backward."""
    aux_logits, main_logits = model(images)
    size = images.shape[-2:]
    aux_up = F.interpolate(aux_logits, size=size, mode="bilinear", align_corners=True)
    main_up = F.interpolate(main_logits, size=size, mode="bilinear", align_corners=True)
    loss = F.cross_entropy(main_up, labels) + AUX_LOSS_WEIGHT * F.cross_entropy(aux_up, labels)
    model.zero_grad(set_to_none=True)
    loss.backward()



def main() -> None:
    # torch and torchvision alone take most of a GiB; report it so the model's share is visible.
    imports_rss_mib = peak_rss_mib()
    args = parse_args()
    torch.set_num_threads(args.threads)
    width_px, height_px = (int(value) for value in args.size.lower().split("x"))
    bn_protocol = args.bn_protocol or ("frozen" if args.arch == "deeplabv2_resnet101" else "learned")
    model = build_model(args.arch, NUM_CLASSES, bn_protocol=bn_protocol, output_stride=args.output_stride)
    model.train()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, height_px, width_px, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (args.batch, height_px, width_px), generator=generator)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if args.compile:
        model = torch.compile(model)

    first_s = time.perf_counter()
    for _ in range(args.warmup):
        train_step(model, images, labels)
    first_s = (time.perf_counter() - first_s) / max(args.warmup, 1)
    start_s = time.perf_counter()
    # CPU time too: on a shared machine wall time is inflated by other jobs, CPU time much less.
    start_cpu_s = time.process_time()
    for _ in range(args.iters):
        train_step(model, images, labels)
    seconds_per_iter = (time.perf_counter() - start_s) / args.iters
    cpu_seconds_per_iter = (time.process_time() - start_cpu_s) / args.iters

    print(
        f"{args.arch} {width_px}x{height_px} batch {args.batch} OS {args.output_stride} "
        f"BN {bn_protocol} threads {args.threads}{' channels_last' if args.channels_last else ''}"
        f"{' compiled' if args.compile else ''}: "
        f"{seconds_per_iter:.3f} s/iter (forward+backward, mean of {args.iters}; "
        f"{cpu_seconds_per_iter:.3f} CPU s/iter), "
        f"peak RSS {peak_rss_mib():.0f} MiB ({imports_rss_mib:.0f} MiB after imports); "
        f"warm-up iteration {first_s:.1f} s"
    )


if __name__ == "__main__":
    main()
