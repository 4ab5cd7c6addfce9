"""The catalogue of bad inputs (docs/robustness.md): each one stops its stage with one line and exit status 2.

Every entry runs the real stage entry point (``cli.run_stage(main)``, as ``python pipeline/<stage>.py``
does) in a tiny project, checks the line on stderr and the exit status, and that no partial artifact
(a ``.tmp`` / ``.old`` sibling, a half-written model or log) is left behind.
"""

import argparse
import errno
import importlib.util
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from globallocal.checkpoints import CheckpointDescription, save_checkpoint
from globallocal.data.labels import NUM_CLASSES
from globallocal.models import build_model
from globallocal.stage_runner import USER_ERROR_STATUS, run_stage
from globallocal.training.loop import build_train_state
from support.configs import optim_config, train_config
from support.tiny_project import REPO, tiny_params

SPEC = {"arch": "mobilenetv3_large", "num_classes": NUM_CLASSES, "backbone_weights": None,
        "bn_protocol": "learned", "output_stride": 16}
SOURCE = Path("data/synthetic/gta5")
TARGET = Path("data/synthetic/cityscapes")
TRAINING_OUTPUTS = (Path("models/pretrain.pt"), Path("reports/train/pretrain"))
#: Patches an entry makes to simulate a failing system (undone after each test).
SYSTEM = pytest.MonkeyPatch()


def stage_main(name: str) -> Callable[[], None]:
    """The ``main`` of ``pipeline/<name>.py``, the function its ``__main__`` block hands to run_stage."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "pipeline" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Tiny params, the tiny benchmark and its file lists, and valid checkpoints of every model."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        run_stage(stage_main("prepare"))
    finally:
        os.chdir(cwd)
    torch.manual_seed(0)
    state = build_train_state(build_model(**SPEC), train_config(optim=optim_config(iterations=1, max_iters=1)),
                              NUM_CLASSES)
    for name in ("pretrain", "source_only", "adapted", "oracle"):
        save_checkpoint(root / f"models/{name}.pt", state.model, SPEC, state.checkpoint_parts(),
                        description=CheckpointDescription(target_size=(64, 32), source_size=(64, 36), source="gta5"))
    (root / "models/pretrain.pt").rename(root / "pretrain_valid.pt")  # the pretrain stage's own output
    return root


@pytest.fixture
def project(base, tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(base, root)
    monkeypatch.chdir(root)
    return root


# ---- ways to break an input ---------------------------------------------------------------------

def set_param(key: str, value):
    def apply(root: Path) -> None:
        params = yaml.safe_load((root / "params.yaml").read_text())
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return apply


DELETE = object()


def both(*changes):
    def apply(root: Path) -> None:
        for change in changes:
            change(root)
    return apply


def every_source(root: Path, folder: str) -> list[Path]:
    """Every source image or label: the shuffled order decides which one the stage meets first."""
    return [root / SOURCE / folder / name for name in (root / "data/lists/source_train.txt").read_text().split()]


def first_val_label(root: Path) -> Path:
    name = (root / "data/lists/target_val.txt").read_text().split()[0]
    return root / TARGET / "gtFine/val" / name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")


def truncate(path: Path, keep_bytes: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:keep_bytes])


def remove_source_labels(root):
    for path in every_source(root, "labels"):
        path.unlink()


def truncate_source_images(root):
    for path in every_source(root, "images"):
        truncate(path)


def colour_source_labels(root):
    for path in every_source(root, "labels"):
        Image.open(path).convert("RGB").save(path)


def out_of_range_source_labels(root):
    for path in every_source(root, "labels"):
        ids = np.array(Image.open(path))
        ids[0, 0] = 200
        Image.fromarray(ids, mode="L").save(path)


def wrong_size_val_label(root):
    path = first_val_label(root)
    label = Image.open(path)
    label.resize((label.width // 2, label.height // 2), Image.NEAREST).save(path)


def remove_source_images(root):
    for path in every_source(root, "images"):
        path.unlink()


def empty_source_list(root):
    (root / "data/lists/source_train.txt").write_text("")


def empty_val_split(root):
    shutil.rmtree(root / TARGET / "leftImg8bit/val")
    (root / TARGET / "leftImg8bit/val/city").mkdir(parents=True)


def real_data(root):
    set_param("prepare.generate", False)(root)


def weights_file(make: Callable[[Path], None]):
    def apply(root: Path) -> None:
        make(root / "weights.pth")
        set_param("model.backbone_weights", "weights.pth")(root)
    return apply


def truncated_weights(path):
    torch.save(torchvision.models.mobilenet_v3_large().state_dict(), path)
    truncate(path, 5000)


def resnet_weights(path):
    torch.save(torchvision.models.resnet18().state_dict(), path)


def list_weights(path):
    torch.save([torch.zeros(3)], path)


def pickled_object_weights(path):
    torch.save({"args": argparse.Namespace(lr=0.1), "conv.weight": torch.zeros(1)}, path)


def pretrain_checkpoint(make: Callable[[Path, Path], None]):
    def apply(root: Path) -> None:
        make(root / "pretrain_valid.pt", root / "models/pretrain.pt")
    return apply


def truncated_checkpoint(valid, path):
    path.write_bytes(valid.read_bytes()[:5000])


def wrong_architecture_checkpoint(valid, path):
    checkpoint = torch.load(valid, weights_only=True)
    checkpoint["model_spec"] = {**SPEC, "num_classes": 16}  # e.g. a SYNTHIA-16 model's spec
    torch.save(checkpoint, path)


def bare_state_dict_checkpoint(valid, path):
    torch.save(torch.load(valid, weights_only=True)["model"], path)


def pickled_object_checkpoint(valid, path):
    torch.save({**torch.load(valid, weights_only=True), "args": argparse.Namespace(lr=0.1)}, path)


def models_folder_is_a_file(root):
    shutil.rmtree(root / "models")
    (root / "models").write_text("not a folder")


def read_only_models_folder(root):
    (root / "models").chmod(0o555)


def disk_full(root):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    SYSTEM.setattr(pathlib.Path, "write_text", full)


def broken_yaml(root):
    (root / "params.yaml").write_text("adapt:\n  lr: [0.1\n")


def unknown_top_level_key(root):
    with open(root / "params.yaml", "a") as handle:
        handle.write("seeed: 1\n")


# ---- the catalogue ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    input: str
    stage: str
    breaks: Callable[[Path], None]
    message: str  # a distinctive part of the line after "error: "; NNNNN stands for a GTA5 image number
    argv: tuple[str, ...] = ()


CATALOGUE = [
    # params
    Entry("params key with a typo", "prepare", set_param("adapt.lamda_adv_local", 0.1),
          "params key 'adapt.lamda_adv_local' is not a known key; did you mean 'adapt.lambda_adv_local'?"),
    Entry("unknown top-level key", "prepare", unknown_top_level_key,
          "params key 'seeed' is not a known key; did you mean 'seed'?"),
    Entry("NaN number", "prepare", set_param("adapt.lr", float("nan")),
          "params key 'adapt.lr' is nan; expected a finite number"),
    Entry("infinite number", "prepare", set_param("train.weight_decay", float("inf")),
          "params key 'train.weight_decay' is inf; expected a finite number"),
    Entry("number YAML reads as text (1e-2)", "prepare", set_param("pretrain.lr", "1e-2"),
          "params key 'pretrain.lr' is '1e-2'; expected a number (YAML reads it as text"),
    Entry("fraction where an integer is needed", "prepare", set_param("pretrain.iterations", 10.5),
          "params key 'pretrain.iterations' is 10.5; expected an integer"),
    Entry("negative weight", "prepare", set_param("adapt.lambda_adv_local", -0.1),
          "params key 'adapt.lambda_adv_local' is -0.1; it must be >= 0"),
    Entry("poly horizon shorter than training", "prepare", set_param("adapt.max_iters", 1),
          "params key 'adapt.max_iters' is 1; the poly horizon must be >= 'adapt.iterations' (2)"),
    Entry("unknown choice", "prepare", set_param("adapt.global_family", "cycada"),
          "params key 'adapt.global_family' is 'cycada'; allowed values: adaptsegnet, advent, minent, none"),
    Entry("D_g pooling larger than the map allows", "prepare", set_param("adapt.global_d_pool", 64),
          "and 'adapt.global_d_pool' (64): D_g (and the domain probe) would see a"),
    Entry("missing key", "prepare", set_param("train.momentum", DELETE),
          "params key 'train.momentum' is missing from params.yaml"),
    Entry("keep no snapshot", "prepare", set_param("train.keep_snapshots", 0),
          "params key 'train.keep_snapshots' is 0; it must be >= 1"),
    Entry("params.yaml not valid YAML", "prepare", broken_yaml, "params.yaml is not valid YAML"),
    # dataset files
    Entry("dataset root missing", "prepare", both(real_data, set_param("data.source_root", "nowhere/GTA5")),
          "nowhere/GTA5/images, nowhere/GTA5/labels: folder not found. 'data.source_root' is 'nowhere/GTA5'"),
    Entry("empty split", "prepare", both(real_data, empty_val_split),
          "data/synthetic/cityscapes/leftImg8bit/val: no *_leftImg8bit.png images in city subfolders"),
    Entry("empty file list", "pretrain", empty_source_list, "data/lists/source_train.txt: file list is empty"),
    Entry("image missing", "pretrain", remove_source_images, "gta5/images/NNNNN.png: file not found"),
    Entry("label missing", "pretrain", remove_source_labels, "gta5/labels/NNNNN.png: label file not found for image"),
    Entry("truncated image", "pretrain", truncate_source_images,
          "gta5/images/NNNNN.png: cannot decode the image (image file is truncated"),
    Entry("label in the wrong mode (colour)", "pretrain", colour_source_labels,
          "gta5/labels/NNNNN.png: label image has PIL mode 'RGB', expected an 8-bit palette ('P') or grey ('L') PNG"),
    Entry("label ids out of range", "pretrain", out_of_range_source_labels,
          "gta5/labels/NNNNN.png: pixel value 200 is not a Cityscapes labelId (0..33)"),
    Entry("label of the wrong size", "evaluate", wrong_size_val_label,
          "_gtFine_labelIds.png: label is 48x24 but its image"),
    # weights and checkpoints
    Entry("backbone weights missing", "pretrain", set_param("model.backbone_weights", "nowhere.pth"),
          "Backbone weights not found at nowhere.pth"),
    Entry("backbone weights truncated", "pretrain", weights_file(truncated_weights),
          "Cannot read backbone weights weights.pth as a PyTorch state dict"),
    Entry("backbone weights of another architecture", "pretrain", weights_file(resnet_weights),
          "Backbone weights weights.pth lack"),
    Entry("backbone weights not a state dict", "pretrain", weights_file(list_weights),
          "Backbone weights weights.pth hold a list, not a state dict"),
    Entry("backbone weights with pickled objects", "pretrain", weights_file(pickled_object_weights),
          "Cannot read backbone weights weights.pth as a PyTorch state dict (UnpicklingError)"),
    Entry("checkpoint missing", "adapt", lambda root: None,
          "checkpoint models/pretrain.pt does not exist: run the stage that writes it first"),
    Entry("checkpoint truncated", "adapt", pretrain_checkpoint(truncated_checkpoint),
          "checkpoint models/pretrain.pt cannot be read ("),
    Entry("checkpoint of another architecture", "adapt", pretrain_checkpoint(wrong_architecture_checkpoint),
          "checkpoint models/pretrain.pt: its weights do not fit the network it names"),
    Entry("checkpoint that is a bare state dict", "adapt", pretrain_checkpoint(bare_state_dict_checkpoint),
          "checkpoint models/pretrain.pt is not a checkpoint of this pipeline"),
    Entry("checkpoint with pickled objects", "adapt", pretrain_checkpoint(pickled_object_checkpoint),
          "checkpoint models/pretrain.pt cannot be read (it holds pickled Python objects"),
    # devices, disk, training
    Entry("CUDA asked, none present", "pretrain", set_param("device", "cuda"),
          "params key 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"),
    Entry("output folder is a file", "pretrain", models_folder_is_a_file,
          "cannot write models/pretrain.pt (a file stands where its folder should be at models)"),
    Entry("output folder read-only", "pretrain", read_only_models_folder,
          "cannot write models/pretrain.pt (Permission denied"),
    Entry("disk full", "prepare", disk_full,
          "cannot write data/synthetic.tmp/synthetic_benchmark.json (No space left on device"),
    Entry("loss becomes NaN (learning rate far too high)", "pretrain", set_param("pretrain.lr", 1.0e30),
          "training stopped at iteration 2: loss term 'loss_seg/main' is nan"),
]


def leftovers(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]


@pytest.mark.parametrize("entry", CATALOGUE, ids=[entry.input for entry in CATALOGUE])
def test_bad_input_stops_the_stage_with_one_line_and_status_2(entry, project, capsys, monkeypatch):
    if entry.input == "CUDA asked, none present" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    if entry.input == "output folder read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    monkeypatch.setattr(sys, "argv", [f"{entry.stage}.py", *entry.argv])
    main = stage_main(entry.stage)  # imported before breaking anything (the disk-full patch)
    try:
        entry.breaks(project)
        with pytest.raises(SystemExit) as stopped:
            run_stage(main)
    finally:
        SYSTEM.undo()

    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == USER_ERROR_STATUS == 2
    errors = [line for line in lines if line.startswith("error: ")]
    expected = re.escape(entry.message).replace("NNNNN", r"\d{5}")
    # One error line naming the problem; what follows it, if anything, is its explanation (e.g. the
    # expected folder tree of a dataset), never a traceback.
    assert len(errors) == 1 and re.search(expected, errors[0]), lines[-1]
    assert not any(line.startswith("Traceback") for line in lines)
    assert "Traceback" not in "\n".join(lines)
    assert leftovers(project) == []
    if entry.stage == "pretrain":
        assert not any((project / path).exists() for path in TRAINING_OUTPUTS)


def test_the_docs_list_every_catalogue_entry():
    catalogue = (REPO / "docs" / "robustness.md").read_text()
    for entry in CATALOGUE:
        assert f"| {entry.input} |" in catalogue, entry.input
