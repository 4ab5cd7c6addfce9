"""Mixed precision: autocast steps run with finite losses; fp16 is refused on the CPU."""

import math

import pytest
import torch

from globallocal.errors import UserError
from globallocal.training.loop import build_train_state, train_step
from globallocal.training.precision import autocast, check_precision, grad_scaler
from support.configs import alignment_config, optim_config, train_config
from support.tiny_models import TinySegmenter, batches

K = 4


def _step(precision, device, channels_last=False):
    torch.manual_seed(0)
    cfg = train_config(
        optim=optim_config(iterations=1, max_iters=10, lr=0.01), alignment=alignment_config(),
        precision=precision, channels_last=channels_last, log_every=1,
    )
    state = build_train_state(TinySegmenter(num_classes=K, single_lr_group=True).to(device), cfg, K)
    source, target = batches(num_classes=K, ignored_rows=0)
    stats = train_step(state, cfg, source, target, device)  # device tensors (lr: floats), read here
    return state, {key: float(value) for key, value in stats.items()}


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_step_on_the_cpu_gives_finite_losses_close_to_fp32(channels_last):
    _, fp32 = _step("fp32", torch.device("cpu"))
    state, bf16 = _step("bf16", torch.device("cpu"), channels_last)
    assert all(math.isfinite(v) for k, v in bf16.items() if k.startswith(("loss", "grad_norm")))
    assert bf16["loss_seg/main"] == pytest.approx(fp32["loss_seg/main"], rel=2e-2)
    assert bf16["loss_adv/global_main"] == pytest.approx(fp32["loss_adv/global_main"], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in state.model.parameters())  # weights stay fp32


def test_autocast_runs_convolutions_in_bf16_but_fp32_changes_nothing():
    conv, x = torch.nn.Conv2d(3, 3, 1), torch.randn(1, 3, 2, 2)
    with autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32


def test_fp16_is_refused_on_the_cpu_naming_the_key():
    with pytest.raises(UserError, match="train.precision"):
        check_precision("fp16", torch.device("cpu"))
    assert not grad_scaler(torch.device("cpu"), "bf16").is_enabled()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_step_gives_finite_losses(precision):
    state, log = _step(precision, torch.device("cuda"), channels_last=True)
    assert all(math.isfinite(v) for k, v in log.items() if k.startswith(("loss", "grad_norm")))
    if precision == "fp16":
        assert state.scaler.is_enabled()
