"""The step's GPU switches (acceleration.py) and bf16 without extra memory, checked on the CPU.

The CUDA-only figures are measured by benchmarks/gpu_check.sh; here: what the switches do to the
optimisers and backends on each device, and which tensors a bf16 forward keeps for backward.
"""

import dataclasses

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d as TorchvisionFrozenBatchNorm2d

from globallocal import config
from globallocal.models import build_model
from globallocal.models.normalization import FrozenBatchNorm2d
from globallocal.training import acceleration
from globallocal.training.loop import build_train_state
from globallocal.training.precision import autocast
from support.configs import optim_config, train_config
from support.tiny_models import K, TinySegmenter

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def frozen_norms():
    """Ours and torchvision's with the same non-trivial buffers (4 channels)."""
    ours, theirs = FrozenBatchNorm2d(4), TorchvisionFrozenBatchNorm2d(4)
    buffers = {"weight": torch.tensor([1.0, 2.0, 0.5, -1.0]), "bias": torch.tensor([0.0, 1.0, -2.0, 3.0]),
               "running_mean": torch.tensor([0.1, -0.2, 0.3, 0.0]), "running_var": torch.tensor([1.0, 4.0, 0.25, 2.0])}
    ours.load_state_dict(buffers)
    theirs.load_state_dict(buffers)
    return ours, theirs


def test_frozen_batchnorm_is_torchvisions_bit_for_bit_in_float32():
    ours, theirs = frozen_norms()
    x = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours(x), theirs(x))
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_frozen_batchnorm_keeps_a_bf16_input_in_bf16():
    ours, theirs = frozen_norms()
    x = torch.ones(1, 4, 1, 1, dtype=torch.bfloat16)
    assert theirs(x).dtype == torch.float32  # the promotion that cost bf16 its memory saving
    y = ours(x)
    assert y.dtype == torch.bfloat16
    # channel 1: 2 * (1 - (-0.2)) / sqrt(4 + 1e-5) + 1 = 2.2 (in bf16: 2.203125)
    assert y[0, 1, 0, 0].item() == pytest.approx(2.2, abs=0.01)


def saved_activation_bytes(model, x, precision):
    """Bytes of each dtype that the forward keeps for backward, parameters and buffers left out."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen = {}

    def pack(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in own:
            seen[pointer] = (tensor.untyped_storage().nbytes(), tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with autocast(CPU, precision):
            model(x)
    totals = {}
    for size, dtype in seen.values():
        totals[dtype] = totals.get(dtype, 0) + size
    return totals


def test_a_bf16_deeplab_forward_keeps_no_float32_activation_for_backward():
    torch.manual_seed(0)
    model = build_model(arch="deeplabv2_resnet101", num_classes=K, backbone_weights=None, bn_protocol="frozen",
                        output_stride=8).train()
    x = torch.randn(1, 3, 48, 64)
    fp32 = saved_activation_bytes(model, x, "fp32")
    bf16 = saved_activation_bytes(model, x, "bf16")
    assert set(fp32) <= {torch.float32, torch.int64}
    assert bf16.get(torch.float32, 0) == 0  # before: as many float32 bytes as the fp32 forward keeps
    assert bf16[torch.bfloat16] > 0


def test_the_cuda_switches_leave_the_cpu_optimisers_and_backends_as_they_were(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = train_config(optim_config(1, 1), cudnn_benchmark=True, fused_optimizer=True)
    state = build_train_state(TinySegmenter(), cfg, K)
    assert state.optimizer.defaults["fused"] is None
    assert torch.backends.cudnn.benchmark is False
    assert acceleration.optimizer_options(CPU, fused=True) == {}


def test_on_cuda_the_optimisers_are_fused_and_cudnn_autotunes_when_asked(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert acceleration.optimizer_options(CUDA, fused=True) == {"fused": True}
    assert acceleration.optimizer_options(CUDA, fused=False) == {}
    acceleration.configure_backends(CUDA, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True
    acceleration.configure_backends(CUDA, cudnn_benchmark=False)
    assert torch.backends.cudnn.benchmark is False


def test_compile_is_opt_in_and_compiles_the_network_in_place(monkeypatch):
    calls = []
    monkeypatch.setattr(TinySegmenter, "compile", lambda self: calls.append(self), raising=False)
    cfg = train_config(optim_config(1, 1))
    model = TinySegmenter()
    build_train_state(model, cfg, K)
    assert calls == []
    build_train_state(model, dataclasses.replace(cfg, compile=True), K)
    assert calls == [model]


def test_the_switches_are_params_with_the_measured_defaults():
    params = config.load_params()
    cfg = config.parse(params).train_config("adapt", aligned=True)
    assert (cfg.cudnn_benchmark, cfg.fused_optimizer, cfg.compile) == (True, True, False)
    params["train"]["compile"] = "yes"
    with pytest.raises(Exception, match="train.compile"):
        config.validate(params)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_step_takes_less_memory_than_fp32():
    from globallocal.training.loop import train_step

    def peak(precision):
        torch.manual_seed(0)
        model = build_model(arch="deeplabv2_resnet101", num_classes=K, backbone_weights=None, bn_protocol="frozen",
                            output_stride=8).to(CUDA)
        cfg = train_config(optim_config(2, 2), precision=precision, multi_level=True)
        state = build_train_state(model, cfg, K)
        assert state.optimizer.defaults["fused"] is True
        source = {"image": torch.randn(1, 3, 360, 640), "label": torch.randint(0, K, (1, 360, 640))}
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        train_step(state, cfg, source, None, CUDA)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()

    assert peak("bf16") < 0.9 * peak("fp32")  # before the frozen-BN fix: 1.2x
