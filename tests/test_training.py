"""The one training loop: poly schedule, lr multipliers, and what each step updates."""

import pytest
import torch
from support.tiny_models import K, TinySegmenter, batches

from globallocal.training import (
    build_train_state,
    poly_lr,
    set_poly_lr,
    RunOptions,
    train,
    train_step,
)
from support.configs import alignment_config, local_config, optim_config, train_config


def config(alignment=None, iterations=4):
    return train_config(optim=optim_config(iterations=iterations, max_iters=10, lr=0.01), alignment=alignment)


def test_poly_lr_follows_the_formula():
    assert poly_lr(0.01, 0, 100, 0.9) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5 ** 0.9)


def test_set_poly_lr_gives_heads_ten_times_the_backbone_rate():
    model = TinySegmenter()
    optimizer = torch.optim.SGD(model.param_groups(1.0), lr=1.0)
    base = set_poly_lr(optimizer, 0.02, 5, optim_config(iterations=10, max_iters=10, power=1.0))
    assert base == pytest.approx(0.01)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.1])


def test_supervised_step_logs_segmentation_losses_only():
    torch.manual_seed(0)
    state = build_train_state(TinySegmenter(), config(), K)
    source, _ = batches()
    log = train_step(state, config(), source, None, torch.device("cpu"))
    assert state.aligners is None and state.iteration == 1
    assert set(log) == {"lr/generator", "loss_seg/main", "loss_seg/aux"}


def test_adaptation_step_updates_generator_and_both_discriminators():
    torch.manual_seed(0)
    cfg = config(alignment_config(local=local_config(conf_threshold=0.0)))
    state = build_train_state(TinySegmenter(), cfg, K)
    assert set(state.aligners.global_terms) == {"main", "aux"}
    assert set(state.aligners.local_terms) == {"main"}
    before = {n: p.detach().clone() for n, p in state.aligners.named_parameters()}
    source, target = batches()
    log = train_step(state, cfg, source, target, torch.device("cpu"))
    for name, param in state.aligners.named_parameters():
        assert not torch.equal(param, before[name]), name
        assert param.requires_grad  # re-enabled after the generator step
    assert {"loss_adv/global_main", "loss_adv/local_main", "loss_d/global_main", "loss_d/local_main"} <= set(log)


def test_alignment_terms_change_the_generator_update():
    source, target = batches()

    def main_head_after_step(lambda_scale):
        torch.manual_seed(0)
        alignment = alignment_config(
            lambda_adv_main=10.0 * lambda_scale, lambda_adv_aux=0.0, lambda_adv_local=10.0 * lambda_scale
        )
        cfg = config(alignment)
        state = build_train_state(TinySegmenter(), cfg, K)
        train_step(state, cfg, source, target, torch.device("cpu"))
        return state.model.main_head.weight.detach().clone()

    assert not torch.allclose(main_head_after_step(1.0), main_head_after_step(0.0))


def test_zero_weights_build_no_discriminator():
    alignment = alignment_config(lambda_adv_main=0, lambda_adv_aux=0, lambda_adv_local=0)
    state = build_train_state(TinySegmenter(), config(alignment), K)
    assert len(list(state.aligners.parameters())) == 0 and state.optimizer_d is None


def test_local_start_iter_delays_the_local_term():
    torch.manual_seed(0)
    cfg = config(alignment_config(local_start_iter=1))
    state = build_train_state(TinySegmenter(), cfg, K)
    source, target = batches()
    first = train_step(state, cfg, source, target, torch.device("cpu"))
    second = train_step(state, cfg, source, target, torch.device("cpu"))
    assert "loss_adv/local_main" not in first and "loss_adv/local_main" in second


class RecordingLive:
    def __init__(self):
        self.steps, self.current, self.step = [], {}, 0

    def log_metric(self, name, value):
        assert isinstance(value, float)
        self.current[name] = value

    def next_step(self):
        self.steps.append(dict(self.current, step=self.step))
        self.current = {}


def test_train_runs_to_iterations_and_logs_interval_means():
    torch.manual_seed(0)
    cfg = train_config(optim=optim_config(iterations=4, max_iters=4, lr=0.01), log_every=2)
    state = build_train_state(TinySegmenter(), cfg, K)
    source, _ = batches()
    live = RecordingLive()
    train(state, cfg, [source], None, torch.device("cpu"), RunOptions(live=live, progress=False))
    assert state.iteration == 4 and [s["step"] for s in live.steps] == [2, 4]
    # lr logged = mean of the two iterations' poly values.
    expected = (poly_lr(0.01, 0, 4, 0.9) + poly_lr(0.01, 1, 4, 0.9)) / 2
    assert live.steps[0]["lr/generator"] == pytest.approx(expected)


def test_gradient_norm_is_the_norm_of_the_loss_gradient_on_the_output_and_leaves_grads_alone():
    from globallocal.training import gradient_norm

    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    output = weight * 1.0
    loss = 0.5 * (output ** 2).sum()  # d loss / d output = output = (3, 4): norm 5
    assert gradient_norm(loss, output) == pytest.approx(5.0)
    assert weight.grad is None
    assert gradient_norm(torch.tensor(1.0), output) == 0.0


def test_a_batch_without_a_labelled_pixel_gives_zero_segmentation_loss_not_nan():
    from globallocal.training import segmentation_loss

    logits = torch.randn(1, K, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    labels = torch.randint(0, K, (1, 4, 4))
    assert torch.equal(segmentation_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))
