"""BatchNorm: how it trains (``model.bn_protocol``) and AdaBN, its re-estimation on target images.

Target batches reach BatchNorm's running statistics whenever a model is trained in ``train()`` mode;
that channel adapts a model without any alignment loss. The protocol says which parts of every
BatchNorm layer training may change:

* ``learned``: affine (weight, bias) trained, running statistics updated in train mode with
  ``model.bn_momentum``. The embedded default: its MobileNet is trained from scratch.
* ``reference``: affine frozen (``requires_grad=False``, so no optimiser holds it), running statistics
  still updated in train mode, target batches included. What the ADVENT and AdaptSegNet code does.
* ``frozen``: statistics and affine fixed (``FrozenBatchNorm2d``): nothing in BatchNorm moves.

``model.norm: group`` replaces every BatchNorm of the MobileNetV3 backbone by GroupNorm (``group_norm``):
a control in which target batches cannot change the network except through gradients.

``reestimate_batchnorm`` is AdaBN (Li et al., 2016): the running statistics of every BatchNorm
recomputed on target images, no gradient step, no parameter changed.

The statistics an adapted (or self-trained) model is evaluated with (``adapt.bn_stats``,
``selftrain.bn_stats``; docs/fair_game.md). In training mode each domain's batch is normalised by its own
batch statistics whatever the setting, so the forward, the losses and every weight are the same in all
three; only the running statistics evaluation uses differ:

* ``mixed``: one set of running statistics, an exponential mix of the alternating source and target
  batches (ADVENT's and AdaptSegNet's code; the paper presets).
* ``domain_specific``: a source set and a target set (``DomainStatistics``; DSBN's statistics, Chang et
  al., CVPR 2019, with the affine shared); the model is evaluated with the target's.
* ``reestimate``: the mixed statistics replaced after training by AdaBN's on target train.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d as _TorchvisionFrozenBatchNorm2d

from globallocal.errors import UserError

BN_PROTOCOLS = ("learned", "reference", "frozen")
#: ``adapt.bn_stats`` / ``selftrain.bn_stats``: the running statistics an adapted model is evaluated with.
BN_STATS = ("mixed", "domain_specific", "reestimate")
DOMAINS = ("source", "target")
#: ``model.norm``: BatchNorm, or GroupNorm (no running statistics: a control with no statistics channel).
NORMS = ("batch", "group")
#: GroupNorm groups: every MobileNetV3 channel count is a multiple of 8 (torchvision's _make_divisible).
GROUPNORM_GROUPS = 8
#: PyTorch's BatchNorm epsilon (FrozenBatchNorm2d uses the same).
DEFAULT_BN_EPS = 1e-5


class FrozenBatchNorm2d(_TorchvisionFrozenBatchNorm2d):
    """``y = x * scale + shift`` per channel, in ``x``'s dtype; the same buffers and checkpoint keys as
    torchvision's (weight, bias, running_mean, running_var).

    torchvision's version multiplies its input by float32 buffers. Under bf16 / fp16 autocast the input
    is a reduced-precision conv output, and type promotion made every frozen-BN output float32 again:
    each ReLU then kept a float32 activation for backward and the next conv its own bf16 copy, so a bf16
    step held *more* activation memory than fp32 (DeepLab-v2 ResNet-101, paper size: 6418 MiB against
    5254 MiB on an H200). Casting the folded scale and shift to the input's dtype fixes that; in float32
    the casts are no-ops (bit-identical results).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        shift = b - rm * scale
        return x * scale.to(x.dtype) + shift.to(x.dtype)


def batchnorm_factory(protocol: str, eps: float = DEFAULT_BN_EPS, momentum: float = 0.1):
    """The BatchNorm layer factory a backbone is built with: ``norm_layer(channels) -> module``.

    ``reference`` builds ordinary BatchNorm2d here; ``apply_bn_protocol`` then freezes its affine.
    """
    if protocol not in BN_PROTOCOLS:
        raise ValueError(f"bn_protocol {protocol!r}; expected one of {BN_PROTOCOLS}")
    if protocol == "frozen":
        return partial(FrozenBatchNorm2d, eps=eps)
    return partial(nn.BatchNorm2d, eps=eps, momentum=momentum)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over GROUPNORM_GROUPS groups: normalises each image on its own, whatever the batch holds."""
    if channels % GROUPNORM_GROUPS:
        raise ValueError(f"GroupNorm needs channels divisible by {GROUPNORM_GROUPS}, got {channels}")
    return nn.GroupNorm(GROUPNORM_GROUPS, channels)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer with running statistics (FrozenBatchNorm2d has none to update)."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


def apply_bn_protocol(model: nn.Module, protocol: str) -> nn.Module:
    """Freeze BatchNorm's affine under ``reference``; ``learned`` and ``frozen`` are set by the layer type.

    requires_grad is not part of a state dict, so this runs every time a model is built (``build_model``).
    """
    if protocol == "reference":
        for layer in batchnorm_layers(model):
            for param in (layer.weight, layer.bias):
                if param is not None:
                    param.requires_grad_(False)
    return model


def upgrade_model_spec(spec: dict) -> dict:
    """A checkpoint's ``build_model`` arguments in today's form: ``freeze_bn`` (before bn_protocol
    existed) becomes ``bn_protocol`` frozen (true) or learned (false)."""
    spec = dict(spec)
    if "freeze_bn" in spec:
        spec["bn_protocol"] = "frozen" if spec.pop("freeze_bn") else "learned"
    return spec


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, images: Iterable[torch.Tensor], device: torch.device | str = "cpu"
) -> int:
    """AdaBN: replace every BatchNorm's running mean / variance by their values on ``images``.

    ``images``: batches of (N, 3, H, W) normalised images (the target train split). Statistics are
    reset, then accumulated as a cumulative average over batches (momentum None: each batch's mean and
    unbiased variance weigh equally, independent of order). No gradient is computed and no parameter
    changes; only running_mean, running_var and num_batches_tracked do. The model is left in eval mode,
    each layer's momentum as it was. Returns the number of batches seen.
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise UserError(
            "AdaBN: the model has no BatchNorm layer with running statistics (bn_protocol frozen?); "
            "re-estimation needs a model trained with bn_protocol learned or reference"
        )
    momenta = [layer.momentum for layer in layers]
    model.eval()  # anything else (dropout, ...) behaves as at test time; only BatchNorm collects statistics
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    count = 0
    try:
        for batch in images:
            model(batch.to(device))
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()
    if count == 0:
        raise UserError("AdaBN: no target image to re-estimate BatchNorm statistics on (empty target train list?)")
    return count


class DomainStatistics:
    """Separate source and target running statistics for every BatchNorm layer of ``model`` (DSBN's
    statistics with a shared affine): ``use(domain)`` before a domain's forward in train mode makes its
    running mean / var / count the ones that batch updates.

    Between training steps the model holds the target's statistics (the last forward of a step is the
    target's; a checkpoint or an evaluation therefore sees them) and this object the source's. Both start
    as the model's statistics when built (the pretrained source model's). Swaps copy in place, so the
    layers' buffers stay the same tensors (optimisers, DDP and torch.compile keep their references).
    """

    def __init__(self, model: nn.Module):
        self.layers = batchnorm_layers(model)
        self.active = "target"
        self.stored = [self._buffers(layer, clone=True) for layer in self.layers]

    @staticmethod
    def _buffers(layer: nn.modules.batchnorm._BatchNorm, clone: bool = False) -> list[torch.Tensor]:
        buffers = [layer.running_mean, layer.running_var, layer.num_batches_tracked]
        return [b.detach().clone() for b in buffers] if clone else buffers

    @torch.no_grad()
    def use(self, domain: str) -> None:
        """Make ``domain``'s statistics the layers' own (the other domain's kept here)."""
        if domain not in DOMAINS:
            raise ValueError(f"domain {domain!r}; expected one of {DOMAINS}")
        if domain == self.active:
            return
        for layer, stored in zip(self.layers, self.stored):
            for live, kept in zip(self._buffers(layer), stored):
                held = live.clone()
                live.copy_(kept)
                kept.copy_(held)
        self.active = domain

    def state_dict(self) -> dict:
        """The statistics held here (the inactive domain's) and which domain the model holds."""
        return {"active": self.active, "stored": [[t.clone() for t in buffers] for buffers in self.stored]}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.active = state["active"]
        for kept, saved in zip(self.stored, state["stored"]):
            for tensor, value in zip(kept, saved):
                tensor.copy_(value)
