"""adapt.bn_stats / selftrain.bn_stats: the running BatchNorm statistics a model trained on source and target
batches keeps. Each setting checked on a tiny BatchNorm model for exactly what it changes."""

import copy

import torch

from globallocal.training.loop import build_train_state, train_step
from globallocal.training.snapshots import capture, restore
from support.configs import optim_config, train_config
from support.tiny_models import K, TinyBatchNormSegmenter, batches

CPU = torch.device("cpu")
STEPS = 4


def pairs():
    """STEPS (source, target) batch pairs, each pair from its own seed."""
    return [batches(seed) for seed in range(STEPS)]


def trained(bn_stats: str, lr: float, steps=None, state=None):
    """A TinyBatchNormSegmenter (seeded) after ``steps`` train steps on ``pairs()`` (all of them by default)."""
    config = train_config(optim_config(STEPS, STEPS, lr=lr), bn_stats=bn_stats, multi_level=False)
    if state is None:
        torch.manual_seed(0)
        state = build_train_state(TinyBatchNormSegmenter(), config, K)
    for source, target in pairs()[state.iteration:steps]:
        train_step(state, config, source, target, CPU)
    return state


def running(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items() if key.startswith("norm.")
            and not key.endswith(("weight", "bias"))}


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def forwarded(images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The running statistics of the initial model after forwarding ``images`` in train mode, in order."""
    torch.manual_seed(0)
    model = TinyBatchNormSegmenter().train()
    with torch.no_grad():
        for batch in images:
            model(batch)
    return running(model)


def test_with_no_weight_change_mixed_statistics_come_from_both_domains_and_domain_specific_from_the_target():
    mixed, specific = trained("mixed", lr=0.0), trained("domain_specific", lr=0.0)
    alternating = [image for source, target in pairs() for image in (source["image"], target["image"])]
    target_only = [target["image"] for _, target in pairs()]
    source_only = [source["image"] for source, _ in pairs()]
    for key, value in forwarded(alternating).items():
        assert torch.equal(running(mixed.model)[key], value), key
    for key, value in forwarded(target_only).items():
        assert torch.equal(running(specific.model)[key], value), key  # what the checkpoint and evaluation get
    stored = dict(zip(("norm.running_mean", "norm.running_var", "norm.num_batches_tracked"),
                      specific.domain_statistics.stored[0]))
    for key, value in forwarded(source_only).items():
        assert torch.equal(stored[key], value), key
    assert not torch.equal(running(mixed.model)["norm.running_mean"], running(specific.model)["norm.running_mean"])


def test_domain_specific_statistics_change_no_weight():
    mixed, specific = trained("mixed", lr=0.01), trained("domain_specific", lr=0.01)
    weights_mixed, weights_specific = parameters(mixed.model), parameters(specific.model)
    assert weights_mixed.keys() == weights_specific.keys()
    for name in weights_mixed:  # train mode normalises each batch by its own statistics in both settings
        assert torch.equal(weights_mixed[name], weights_specific[name]), name
    assert parameters(trained("mixed", lr=0.0).model)["backbone.weight"].ne(weights_mixed["backbone.weight"]).any()
    assert not torch.equal(running(mixed.model)["norm.running_var"], running(specific.model)["norm.running_var"])


def test_reestimate_trains_as_mixed():
    """reestimate changes nothing in training (the stage re-estimates afterwards: tests/e2e/test_bn_stats.py)."""
    mixed, reestimate = trained("mixed", lr=0.01), trained("reestimate", lr=0.01)
    assert reestimate.domain_statistics is None
    for key, value in mixed.model.state_dict().items():
        assert torch.equal(reestimate.model.state_dict()[key], value), key


def test_domain_specific_statistics_resume_from_a_snapshot_exactly():
    reference = trained("domain_specific", lr=0.01)
    half = trained("domain_specific", lr=0.01, steps=STEPS // 2)
    payload = copy.deepcopy(capture(half, {}, {}))
    torch.manual_seed(1)
    config = train_config(optim_config(STEPS, STEPS, lr=0.01), bn_stats="domain_specific", multi_level=False)
    fresh = build_train_state(TinyBatchNormSegmenter(), config, K)
    restore(payload, fresh, {})
    resumed = trained("domain_specific", lr=0.01, state=fresh)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    for kept, expected in zip(resumed.domain_statistics.stored[0], reference.domain_statistics.stored[0]):
        assert torch.equal(kept, expected)
