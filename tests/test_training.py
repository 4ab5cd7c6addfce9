"""The one training loop: poly schedule, lr multipliers, and what each step updates."""

import pytest
import torch

from globallocal.training.loop import (
    RunOptions,
    build_train_state,
    poly_lr,
    set_poly_lr,
    train,
    train_step,
)
from support.configs import alignment_config, local_config, optim_config, train_config
from support.tiny_models import K, TinySegmenter, batches


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
    from globallocal.training.loop import gradient_norm

    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    output = weight * 1.0
    loss = 0.5 * (output ** 2).sum()  # d loss / d output = output = (3, 4): norm 5
    assert gradient_norm(loss, output) == pytest.approx(5.0)
    assert weight.grad is None
    assert gradient_norm(torch.tensor(1.0), output) == 0.0


def test_a_batch_without_a_labelled_pixel_gives_zero_segmentation_loss_not_nan():
    from globallocal.training.loop import segmentation_loss

    logits = torch.randn(1, K, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    labels = torch.randint(0, K, (1, 4, 4))
    assert torch.equal(segmentation_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))


def test_the_loop_reads_values_on_the_host_only_at_log_steps(monkeypatch):
    """Every statistic stays a device tensor between log steps: on CUDA a host read stalls the step."""
    import sys

    from globallocal.data.order import DataStream

    torch.manual_seed(0)
    cfg = train_config(optim=optim_config(iterations=7, max_iters=7, lr=0.01), log_every=3,
                       alignment=alignment_config(local=local_config(conf_threshold=0.0)))
    state = build_train_state(TinySegmenter(), cfg, K)
    reads, loading = [], [False]
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "globallocal" in caller and not loading[0]:  # the library's reads, not torch's or the loader's
                reads.append((state.iteration, _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    next_batch = DataStream.__next__

    def loading_batch(self):
        loading[0] = True
        try:
            return next_batch(self)
        finally:
            loading[0] = False

    monkeypatch.setattr(DataStream, "__next__", loading_batch)
    source, target = batches()
    live = RecordingLive()
    train(state, cfg, [source], [target], torch.device("cpu"), RunOptions(live=live, progress=False))
    # One read (all statistics in one copy) after iterations 3, 6 and the last, 7; none inside a step.
    assert reads == [(3, "tolist"), (6, "tolist"), (7, "tolist")]
    assert [s["step"] for s in live.steps] == [3, 6, 7]
    assert {"loss_adv/local_main", "d_acc/local_main_source", "grad_norm/local_main"} <= set(live.steps[0])


def stub_step(values):
    """A train_step that returns ``values[i]`` at its i-th call, as tensors (lr as a float)."""

    def step(state, config, source, target, device):
        stats = values[state.iteration]
        state.iteration += 1
        return {key: value if key.startswith("lr") else torch.tensor(value) for key, value in stats.items()}

    return step


def test_the_logged_means_are_the_means_of_each_interval_and_a_statistic_undefined_throughout_is_not_logged(
        monkeypatch):
    import globallocal.training.loop as training

    nan = float("nan")
    values = [
        {"lr/generator": 0.4, "loss_seg/main": 1.0, "d_acc/local_main_source": nan},
        {"lr/generator": 0.2, "loss_seg/main": 2.0, "d_acc/local_main_source": 0.5},
        {"lr/generator": 0.1, "loss_seg/main": 3.0, "d_acc/local_main_source": nan},
        {"lr/generator": 0.1, "loss_seg/main": 4.0, "d_acc/local_main_source": nan},
        {"lr/generator": 0.0, "loss_seg/main": 0.5, "d_acc/local_main_source": 0.75},
    ]
    monkeypatch.setattr(training, "train_step", stub_step(values))
    cfg = train_config(optim=optim_config(iterations=5, max_iters=5, lr=0.01), log_every=2)
    state = build_train_state(TinySegmenter(), cfg, K)
    live = RecordingLive()
    last = train(state, cfg, [None], None, torch.device("cpu"), RunOptions(live=live, progress=False))
    assert live.steps == [
        {"lr/generator": pytest.approx(0.3), "loss_seg/main": 1.5, "d_acc/local_main_source": 0.5, "step": 2},
        {"lr/generator": pytest.approx(0.1), "loss_seg/main": 3.5, "step": 4},  # accuracy undefined at 3 and 4
        {"lr/generator": 0.0, "loss_seg/main": 0.5, "d_acc/local_main_source": 0.75, "step": 5},
    ]
    assert last == {"lr/generator": 0.0, "loss_seg/main": 0.5, "d_acc/local_main_source": 0.75}


def test_a_non_finite_loss_between_log_steps_stops_training_naming_its_own_iteration(monkeypatch):
    import globallocal.training.loop as training
    from globallocal.errors import UserError

    values = [{"loss_seg/main": 1.0}, {"loss_seg/main": float("inf")}, {"loss_seg/main": float("nan")},
              {"loss_seg/main": 1.0}]
    monkeypatch.setattr(training, "train_step", stub_step(values))
    cfg = train_config(optim=optim_config(iterations=4, max_iters=4, lr=0.01), log_every=4)
    state = build_train_state(TinySegmenter(), cfg, K)
    live = RecordingLive()
    with pytest.raises(UserError, match=r"^training stopped at iteration 2: loss term 'loss_seg/main' is inf "):
        train(state, cfg, [None], None, torch.device("cpu"), RunOptions(live=live, progress=False))
    assert live.steps == []  # nothing of the interval is logged


def test_cpu_threads_sets_torchs_thread_count_and_auto_leaves_it(monkeypatch):
    import torch

    from globallocal.runtime import use_cpu_threads
    before = torch.get_num_threads()
    try:
        use_cpu_threads("auto")
        assert torch.get_num_threads() == before
        use_cpu_threads(3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
