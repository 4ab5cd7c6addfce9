"""The local-alignment variants behind the local-term diagnosis: each param changes what it says."""

import pytest
import torch

from globallocal.alignment.discriminators import GlobalDiscriminator, LocalDiscriminator
from globallocal.alignment.local import DROPPED, LocalAlignment
from globallocal.alignment.representations import HeadOutputs, self_information
from globallocal.training.loop import build_train_state, train_step
from support.configs import alignment_config, local_config, optim_config, train_config
from support.tiny_models import TinySegmenter, batches

K = 4


def _logits(*columns):
    """(1, K, 1, len(columns)) logits, one column per position."""
    return torch.tensor(columns, dtype=torch.float32).T.reshape(1, K, 1, len(columns))


def test_both_filter_drops_unconfident_source_outputs_the_target_filter_keeps():
    labels = torch.tensor([[[0, 1]]])
    source = _logits([10.0, 0, 0, 0], [0.2, 0.1, 0, 0])  # confident class 0; unconfident (labelled 1)
    target_only = LocalAlignment(K, local_config(conf_threshold=0.9, conf_filter="target"))
    both = LocalAlignment(K, local_config(conf_threshold=0.9, conf_filter="both"))
    assert target_only.source_categories(labels, source).tolist() == [[[0, 1]]]
    assert both.source_categories(labels, source).tolist() == [[[0, DROPPED]]]


def test_both_filter_changes_the_discriminator_loss_and_the_kept_share():
    torch.manual_seed(0)
    labels = torch.tensor([[[0, 1]]])
    source = _logits([10.0, 0, 0, 0], [0.2, 0.1, 0, 0])
    target = _logits([0, 10.0, 0, 0], [0, 10.0, 0, 0])
    stats = {}
    for mode in ("target", "both"):
        torch.manual_seed(0)
        local = LocalAlignment(K, local_config(conf_threshold=0.9, conf_filter=mode))
        _, stats[mode] = local.discriminator_loss(source, labels, target)
    assert stats["target"]["local_kept/source"] == 1.0 and stats["both"]["local_kept/source"] == 0.5


def test_context_gives_the_local_discriminator_a_neighbourhood():
    assert LocalDiscriminator(K).net[0].kernel_size == (1, 1)
    d = LocalDiscriminator(K, context=3)
    assert d.net[0].kernel_size == (3, 3) and d(torch.zeros(2, K, 5, 7)).shape == (2, K, 5, 7)
    # A change at one position moves the output of its neighbour only when D_l sees context.
    x = torch.randn(1, K, 3, 3)
    y = x.clone()
    y[0, :, 1, 1] += 5.0
    torch.manual_seed(0)
    lone = LocalDiscriminator(K)
    torch.manual_seed(0)
    wide = LocalDiscriminator(K, context=3)
    assert torch.equal(lone(x)[0, :, 0, 0], lone(y)[0, :, 0, 0])
    assert not torch.equal(wide(x)[0, :, 0, 0], wide(y)[0, :, 0, 0])


def test_global_discriminator_width_scales_its_hidden_channels():
    widths = [m.out_channels for m in GlobalDiscriminator(K, width=32).net if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 64, 128, 256, 1]
    advent = [m.out_channels for m in GlobalDiscriminator(K).net if isinstance(m, torch.nn.Conv2d)]
    assert advent == [64, 128, 256, 512, 1]


def test_local_gradient_reaches_the_network_only_through_target_outputs_that_passed_the_filter():
    local = LocalAlignment(K, local_config(representation="self_information", window=2, conf_threshold=0.9))
    logits = torch.zeros(1, K, 2, 4)
    logits[0, 0, :, :2] = 8.0  # left cell: confidently class 0 -> kept
    logits[0, 1, :, 2:] = 0.3  # right cell: max prob ~0.3 -> dropped
    logits.requires_grad_(True)
    assert local.target_categories(logits).tolist() == [[[0, DROPPED]]]
    local.generator_loss(logits).backward()
    assert logits.grad[..., :2].abs().sum() > 0
    assert torch.all(logits.grad[..., 2:] == 0)


def test_shared_head_outputs_give_the_same_losses_as_raw_logits():
    torch.manual_seed(0)
    local = LocalAlignment(K, local_config(conf_threshold=0.0))
    source, target = torch.randn(2, K, 4, 4), torch.randn(2, K, 4, 4) * 3
    labels = torch.randint(0, K, (2, 4, 4))
    shared = HeadOutputs(target)
    shared.represent("self_information")  # computed once, reused by every term below
    assert torch.equal(local.generator_loss(shared), local.generator_loss(target))
    assert torch.equal(local.discriminator_loss(source, labels, shared)[0],
                       local.discriminator_loss(source, labels, target)[0])
    assert torch.equal(shared.represent("self_information"), self_information(torch.softmax(target, 1)))


# --- through the training step ---------------------------------------------------------------

def Tiny():
    return TinySegmenter(num_classes=K, single_lr_group=True)


def _batches():
    return batches(num_classes=K, ignored_rows=0)


def _run(alignment, steps=2, log_every=10):
    torch.manual_seed(0)
    cfg = train_config(optim=optim_config(iterations=steps, max_iters=10, lr=0.01), alignment=alignment,
                       log_every=log_every)
    state = build_train_state(Tiny(), cfg, K)
    source, target = _batches()
    logs = [train_step(state, cfg, source, target, torch.device("cpu")) for _ in range(steps)]
    return state, logs


def _weights(state):
    return {k: v.clone() for k, v in {**state.model.state_dict(), **state.aligners.state_dict()}.items()}


def test_zero_local_weight_is_bit_identical_to_global_only_whatever_the_local_settings():
    global_only, _ = _run(alignment_config(lambda_adv_local=0.0))
    variant = local_config(window=2, conf_threshold=0.1, conf_filter="both", context=3)
    zero_local, _ = _run(alignment_config(
        lambda_adv_local=0.0, local=variant, lr_d_local=1e-2, local_warmup_iters=1, local_start_iter=1
    ))
    a, b = _weights(global_only), _weights(zero_local)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with_local, _ = _run(alignment_config(lambda_adv_local=1.0, local=local_config(conf_threshold=0.0)))
    assert not torch.equal(with_local.model.main_head.weight, global_only.model.main_head.weight)


def test_lr_d_local_gives_the_local_discriminator_its_own_learning_rate():
    state, logs = _run(alignment_config(lr_d_local=1e-3), steps=1)
    global_group, local_group = state.optimizer_d.param_groups
    assert global_group["lr"] == pytest.approx(1e-4) and local_group["lr"] == pytest.approx(1e-3)
    local_params = {id(p) for p in state.aligners.local_terms.parameters()}
    assert {id(p) for p in local_group["params"]} == local_params


def test_warmup_trains_the_local_discriminator_before_the_generator_feels_it():
    _, logs = _run(alignment_config(local_warmup_iters=1, local=local_config(conf_threshold=0.0)))
    assert "loss_d/local_main" in logs[0] and "loss_adv/local_main" not in logs[0]
    assert "loss_adv/local_main" in logs[1]


def test_logging_steps_measure_each_terms_gradient_norm_and_discriminator_accuracy():
    _, logs = _run(alignment_config(local=local_config(conf_threshold=0.0)), steps=2, log_every=2)
    assert not any(key.startswith("grad_norm/") for key in logs[0])
    norms = {k: v for k, v in logs[1].items() if k.startswith("grad_norm/")}
    assert set(norms) == {"grad_norm/seg_main", "grad_norm/global_main", "grad_norm/global_aux", "grad_norm/local_main"}
    assert all(v > 0 for v in norms.values())
    for key in ("d_acc/global_main_source", "d_acc/local_main_target", "local_kept/local_main_source"):
        assert 0.0 <= logs[1][key] <= 1.0
