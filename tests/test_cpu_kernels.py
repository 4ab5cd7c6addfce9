"""The same seed gives the same bits on every x86-64 CPU with AVX2: importing globallocal limits oneDNN's kernels.

Each case runs in a fresh interpreter, because oneDNN reads ONEDNN_MAX_CPU_ISA once, at its first convolution.
On an AVX2-only machine the default and the explicit AVX2 kernels are the same ones, so the comparison holds there
trivially; on an AVX-512 machine (CI's) a conv net's bits differ between the two unless the package set the limit.
"""

import os
import subprocess
import sys

import pytest

# A small conv net's output and weight gradient, hashed; `pkg` imports globallocal before torch does any work.
PROGRAM = """
import hashlib, sys
if sys.argv[1] == "pkg":
    import globallocal
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 32, 3, padding=1, stride=2))
out = net(torch.randn(2, 3, 48, 64))
out.square().mean().backward()
print(hashlib.md5(out.detach().numpy().tobytes() + net[0].weight.grad.numpy().tobytes()).hexdigest())
"""


def conv_bits(mode: str, isa: str | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    if isa is not None:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="oneDNN's ISA limit is checked on Linux x86-64")
def test_import_gives_the_avx2_kernels_bits():
    assert conv_bits("pkg", None) == conv_bits("raw", "AVX2")


def test_a_limit_already_set_is_kept():
    code = "import os, globallocal; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "ALL"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ALL"
    env.pop("ONEDNN_MAX_CPU_ISA")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "AVX2"
