"""Data-parallel training: two gloo ranks on the CPU take the step one process takes on the union batch.

The two ranks are spawned once per module (``torch.multiprocessing``); each runs every scenario and
saves what it ends with, and the tests below compare those files with single-process runs.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from torch import nn

from globallocal import config
from globallocal.data.file_lists import list_cityscapes, list_gta5, write_list
from globallocal.data.loading import MAX_AUTO_WORKERS, DeviceLoader, resolve_num_workers, train_loader
from globallocal.data.synthetic import generate_benchmark
from globallocal.errors import UserError
from globallocal.training import distributed
from globallocal.training.distributed import torchrun_command
from globallocal.training.loop import build_train_state, train_step
from support.configs import alignment_config, launch_config, optim_config, train_config
from support.tiny_project import REPO

K = 3
WORLD_SIZE = 2
PER_RANK = 2  # images per domain per rank; the union batch has WORLD_SIZE * PER_RANK
CPU = torch.device("cpu")


class TinySegmenter(nn.Module):
    """(aux, main) logits at half resolution, two lr groups, no BatchNorm (per-rank statistics aside)."""

    input_normalization = "imagenet"

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.aux_head = nn.Conv2d(8, K, 1)
        self.main_head = nn.Conv2d(8, K, 1)

    def forward(self, x):
        features = torch.relu(self.backbone(x))
        return self.aux_head(features), self.main_head(features)

    def param_groups(self, base_lr):
        heads = [*self.aux_head.parameters(), *self.main_head.parameters()]
        return [
            {"params": list(self.backbone.parameters()), "lr": base_lr, "lr_mult": 1.0},
            {"params": heads, "lr": 10 * base_lr, "lr_mult": 10.0},
        ]


def union_batches(step):
    """Source and target batches of WORLD_SIZE * PER_RANK images; every image has the same ignore band,
    so every rank has as many valid pixels and the mean of the per-rank CE gradients is the union's."""
    g = torch.Generator().manual_seed(100 + step)
    n = WORLD_SIZE * PER_RANK
    source = {"image": torch.randn(n, 3, 32, 32, generator=g), "label": torch.randint(0, K, (n, 32, 32), generator=g)}
    source["label"][:, :4] = 255
    target = {"image": torch.randn(n, 3, 32, 32, generator=g) + 1}
    return source, target


def rank_share(batch, rank):
    return {key: value[rank * PER_RANK:(rank + 1) * PER_RANK] for key, value in batch.items()}


#: The runs compared: a global-only adaptation (AdvEnt on both heads; the class-balanced local loss is
#: not decomposable over ranks), an AdaptSegNet one (softmax + LS-GAN), and a source-only run on the main
#: head only (the aux head gets no gradient on any rank: it must neither hang nor move).
SCENARIOS = {
    "advent_global": train_config(
        optim=optim_config(iterations=2, max_iters=10, lr=0.01),
        alignment=alignment_config(lambda_adv_main=1.0, lambda_adv_aux=0.5, lambda_adv_local=0.0),
    ),
    "adaptsegnet_lsgan": train_config(
        optim=optim_config(iterations=2, max_iters=10, lr=0.01),
        alignment=alignment_config(global_family="adaptsegnet", gan_loss="lsgan", lambda_adv_main=1.0,
                                  lambda_adv_aux=0.5, lambda_adv_local=0.0),
    ),
    "source_only_main_head": train_config(optim=optim_config(iterations=2, max_iters=10, lr=0.01), multi_level=False),
}
STEPS = 2


def run_scenario(name, rank=0, world_size=1, context=None):
    """STEPS training steps of SCENARIOS[name]; returns the model's and discriminators' final weights."""
    cfg = SCENARIOS[name]
    torch.manual_seed(rank)  # rank 1 starts from other weights: distribute() must replace them with rank 0's
    state = build_train_state(TinySegmenter(), cfg, K)
    if context is not None:
        context.distribute(state)
    for step in range(STEPS):
        source, target = union_batches(step)
        if world_size > 1:
            source, target = rank_share(source, rank), rank_share(target, rank)
        train_step(state, cfg, source, target if cfg.alignment else None, CPU)
    weights = {f"model.{k}": v.clone() for k, v in state.model.state_dict().items()}
    if state.aligners is not None:
        weights.update({f"aligners.{k}": v.clone() for k, v in state.aligners.state_dict().items()})
    return weights


def tiny_params(root: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["prepare"].update({"num_source": 4, "num_target_train": 4, "num_target_val": 1,
                              "source_size": [64, 36], "target_size": [64, 32]})
    params["data"].update({"source_size": [64, 36], "target_size": [64, 32], "train_crop": [64, 32]})
    for key in ("source_root", "target_root", "lists_dir"):
        params["data"][key] = str(root / params["data"][key])
    params["prepare"]["out_dir"] = str(root / params["prepare"]["out_dir"])
    params["pretrain"].update({"iterations": 2, "max_iters": 2})
    params["adapt"]["global_d_pool"] = 1  # D_g needs a 32x32 map at 64x32
    params["train"].update({"log_every": 1, "nproc_per_node": WORLD_SIZE})
    return params


def prepare_tiny_benchmark(params: dict) -> None:
    tree = config.parse(params)
    data = tree.data
    generate_benchmark(tree.prepare.out_dir, tree.synthetic_config())
    write_list(data.lists_dir / "source_train.txt", list_gta5(data.source_root))
    write_list(data.lists_dir / "target_train.txt", list_cityscapes(data.target_root, "train"))


def rank_main(rank: int, port: int, out: Path, params: dict) -> None:
    """One spawned rank: the environment torchrun would set, then every scenario and a training stage."""
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE),
                       "LOCAL_WORLD_SIZE": str(WORLD_SIZE), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    context = distributed.start(launch_config(nproc_per_node=WORLD_SIZE), CPU)
    for name in SCENARIOS:
        torch.save(run_scenario(name, rank, WORLD_SIZE, context), out / f"{name}.rank{rank}.pt")

    # A parameter one rank used and the other did not, and one that no rank used.
    used_by_rank0, unused = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    if rank == 0:
        used_by_rank0.grad = torch.tensor([2.0, 4.0, 6.0])
    distributed.average_gradients([used_by_rank0, unused])
    torch.save({"used_by_rank0": used_by_rank0.grad, "unused": unused.grad}, out / f"grads.rank{rank}.pt")

    # The stage glue: each rank is handed its own output paths; only rank 0 may create them.
    from globallocal.training.stage import training_stage

    training_stage(config.parse(params).stage_config("pretrain"), out / f"stage_rank{rank}" / "model.pt",
                   out / f"stage_rank{rank}" / "log")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The folder where both ranks left their results."""
    out = tmp_path_factory.mktemp("ranks")
    params = tiny_params(out / "project")
    prepare_tiny_benchmark(params)
    mp.spawn(rank_main, args=(free_port(), out, params), nprocs=WORLD_SIZE, join=True)
    return out


@pytest.mark.e2e  # spawns two ranks that run a training stage
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_ranks_take_the_single_process_step_on_the_union_batch(two_ranks, name):
    single = run_scenario(name)
    for rank in range(WORLD_SIZE):
        ranked = torch.load(two_ranks / f"{name}.rank{rank}.pt", weights_only=True)
        assert set(ranked) == set(single)
        for key, value in single.items():
            torch.testing.assert_close(ranked[key], value, rtol=0, atol=1e-5, msg=f"rank {rank}: {key}")


@pytest.mark.e2e  # spawned ranks / a stage under torchrun
def test_the_steps_compared_do_move_the_weights(two_ranks):
    torch.manual_seed(0)
    initial = build_train_state(TinySegmenter(), SCENARIOS["advent_global"], K)
    final = torch.load(two_ranks / "advent_global.rank0.pt", weights_only=True)
    moved = (final["model.main_head.weight"] - initial.model.main_head.weight).abs().max()
    assert moved > 1e-3


@pytest.mark.e2e  # spawned ranks / a stage under torchrun
def test_source_only_without_aux_level_leaves_the_unused_aux_head_untouched(two_ranks):
    torch.manual_seed(0)
    initial = TinySegmenter()
    final = torch.load(two_ranks / "source_only_main_head.rank1.pt", weights_only=True)
    assert torch.equal(final["model.aux_head.weight"], initial.aux_head.weight.detach())


@pytest.mark.e2e  # spawned ranks / a stage under torchrun
def test_a_gradient_one_rank_lacks_counts_as_zero_and_one_no_rank_has_stays_none(two_ranks):
    for rank in range(WORLD_SIZE):
        grads = torch.load(two_ranks / f"grads.rank{rank}.pt", weights_only=True)
        assert grads["used_by_rank0"].tolist() == [1.0, 2.0, 3.0]
        assert grads["unused"] is None


@pytest.mark.e2e  # spawned ranks / a stage under torchrun
def test_only_rank_0_writes_the_checkpoint_and_the_dvclive_log(two_ranks):
    written = two_ranks / "stage_rank0"
    assert (written / "model.pt").is_file()
    rows = (written / "log/plots/metrics/loss_seg/main.tsv").read_text().strip().splitlines()
    assert [int(row.split("\t")[0]) for row in rows[1:]] == [1, 2]
    assert not (two_ranks / "stage_rank1").exists()


# ---- the launcher -------------------------------------------------------------------------------

def test_one_node_relaunches_standalone_with_the_same_script_and_arguments():
    command = torchrun_command(launch_config(nproc_per_node=4), ["pipeline/adapt.py", "--source-only"])
    assert command == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4", "--standalone",
                       "pipeline/adapt.py", "--source-only"]


def test_several_nodes_meet_at_the_rendezvous_endpoint():
    command = torchrun_command(launch_config(nproc_per_node=8, nnodes=2, rdzv_endpoint="node0:29400"), ["s.py"])
    assert command[3:] == ["--nproc_per_node=8", "--nnodes=2", "--master_addr=node0", "--master_port=29400", "s.py"]


def test_a_single_process_is_not_relaunched(monkeypatch):
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("relaunched"))
    distributed.relaunch_under_torchrun(launch_config())
    context = distributed.start(launch_config(), CPU)
    assert context.is_main and not context.is_distributed and context.rank_seed(7) == 7


@pytest.mark.e2e  # spawned ranks / a stage under torchrun
def test_the_stage_command_runs_itself_on_two_gloo_ranks_through_torchrun(tmp_path):
    """`python pipeline/pretrain.py` with train.nproc_per_node: 2 re-executes under torchrun and finishes."""
    params = tiny_params(tmp_path)
    prepare_tiny_benchmark(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(REPO / "pipeline/pretrain.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "models/pretrain.pt", weights_only=True)
    assert checkpoint["iteration"] == 2


# ---- params ----------------------------------------------------------------------------------------

def test_the_batch_must_split_evenly_over_the_processes():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update({"batch_size": 2, "nproc_per_node": 4})
    with pytest.raises(UserError, match="train.batch_size.*multiple of the 4 processes"):
        config.parse(params)


def test_the_rendezvous_endpoint_needs_a_port():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["rdzv_endpoint"] = "node0"
    with pytest.raises(UserError, match="train.rdzv_endpoint"):
        config.parse(params)


def test_num_workers_accepts_auto():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["num_workers"] = "auto"
    assert config.parse(params).num_workers == "auto"


# ---- data loading ----------------------------------------------------------------------------------

class Indices(torch.utils.data.Dataset):
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return {"image": torch.tensor([index])}


def passes(loader, count=3):
    return [[batch["image"].flatten().tolist() for batch in loader] for _ in range(count)]


@pytest.mark.parametrize("size,batch", [(10, 2), (7, 2), (5, 3)])
def test_the_order_is_the_one_of_the_seeded_shuffling_loader_it_replaces(size, batch):
    legacy = torch.utils.data.DataLoader(Indices(size), batch_size=batch, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(3))
    assert passes(train_loader(Indices(size), batch, seed=3, num_workers=0)) == passes(legacy)


def test_the_batches_do_not_depend_on_num_workers():
    assert passes(train_loader(Indices(10), 2, seed=3, num_workers=2)) == passes(
        train_loader(Indices(10), 2, seed=3, num_workers=0))


def test_ranks_load_contiguous_slices_of_the_single_process_batches():
    whole = passes(train_loader(Indices(12), 4, seed=5, num_workers=0))
    rank0 = passes(train_loader(Indices(12), 4, seed=5, num_workers=0, rank=0, world_size=2))
    rank1 = passes(train_loader(Indices(12), 4, seed=5, num_workers=0, rank=1, world_size=2))
    assert [[a + b for a, b in zip(p, q)] for p, q in zip(rank0, rank1)] == whole
    assert all(len(batch) == 2 for batch in rank0[0])


def test_a_dataset_smaller_than_the_global_batch_cannot_be_shared():
    with pytest.raises(UserError, match="lower train.batch_size or train.nproc_per_node"):
        train_loader(Indices(3), 4, seed=0, num_workers=0, rank=0, world_size=2)


def test_auto_workers_share_the_cpus_and_stop_at_the_cap(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert resolve_num_workers("auto") == MAX_AUTO_WORKERS == 8
    assert resolve_num_workers("auto", processes_per_node=16) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert resolve_num_workers("auto", processes_per_node=4) == 1
    assert resolve_num_workers(3) == 3


# ---- CUDA / nccl (skipped without GPUs) ------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_arrive_on_the_device_with_the_same_values():
    loader = train_loader(Indices(6), 2, seed=1, num_workers=0, pin_memory=True)
    on_device = [batch["image"] for batch in DeviceLoader(loader, torch.device("cuda"))]
    assert all(t.is_cuda for t in on_device)
    # A fresh loader with the same seed: the first one's sampler has moved on to its second pass.
    fresh = train_loader(Indices(6), 2, seed=1, num_workers=0)
    assert [t.cpu().flatten().tolist() for t in on_device] == passes(fresh, 1)[0]


def nccl_rank_main(rank: int, port: int, out: Path) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE),
                       "LOCAL_WORLD_SIZE": str(WORLD_SIZE), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    context = distributed.start(launch_config(nproc_per_node=WORLD_SIZE), torch.device("cuda"))
    assert context.device == torch.device("cuda", rank)
    param = nn.Parameter(torch.zeros(3, device=context.device))
    param.grad = torch.full((3,), float(rank + 1), device=context.device)
    distributed.average_gradients([param])
    torch.save(param.grad.cpu(), out / f"nccl.rank{rank}.pt")


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_nccl_ranks_average_their_gradients(tmp_path):
    mp.spawn(nccl_rank_main, args=(free_port(), tmp_path), nprocs=WORLD_SIZE, join=True)
    for rank in range(WORLD_SIZE):
        assert torch.load(tmp_path / f"nccl.rank{rank}.pt").tolist() == [1.5, 1.5, 1.5]
