"""AdaBN as a pipeline step: it reads the target train images only, never dev or val."""

from pathlib import Path

import torch
from torch import nn

import globallocal.training.adabn as adabn
from globallocal.data.file_lists import TARGET_DEV_LIST, TARGET_TRAIN_LIST, TARGET_VAL_LIST
from globallocal.data.loading import DataConfig


class RecordingDataset(torch.utils.data.Dataset):
    """Stands in for the Cityscapes reader: one constant (3, 4, 4) image per name, named as asked."""

    def __init__(self, root, split, names, image_size, normalization, with_labels):
        self.split, self.names, self.with_labels = split, list(names), with_labels
        self.image_size, self.normalization = image_size, normalization

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        return {"image": torch.full((3, 4, 4), float(index)), "name": self.names[index]}


def test_adabn_reads_exactly_the_target_train_list(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / TARGET_TRAIN_LIST).write_text("train/a.png\ntrain/b.png\ntrain/c.png\n")
    (lists / TARGET_DEV_LIST).write_text("train/dev.png\n")
    (lists / TARGET_VAL_LIST).write_text("val/v.png\n")
    made = []

    def recording_dataset(*args, **kwargs):
        made.append(RecordingDataset(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(adabn, "target_dataset", recording_dataset)
    data = DataConfig("gta5", Path("src"), Path("tgt"), lists, (8, 4), (4, 4), None)
    model = nn.Sequential(nn.BatchNorm2d(3))
    model.input_normalization = "imagenet"

    assert adabn.adapt_batchnorm(model, data, batch_size=2) == 2  # 3 images in batches of 2
    (dataset,) = made
    assert dataset.split == "train" and dataset.names == ["train/a.png", "train/b.png", "train/c.png"]
    assert (dataset.image_size, dataset.normalization, dataset.with_labels) == ((4, 4), "imagenet", False)
    # Batch 1 holds images 0 and 1: 16 zeros and 16 ones per channel (mean 0.5, unbiased variance
    # 32 * 0.25 / 31); batch 2 is image 2, all twos (mean 2, variance 0). Each batch weighs half.
    torch.testing.assert_close(model[0].running_mean, torch.full((3,), (0.5 + 2.0) / 2))
    torch.testing.assert_close(model[0].running_var, torch.full((3,), (0.25 * 32 / 31 + 0.0) / 2))


def test_a_model_without_running_statistics_comes_back_unchanged(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / TARGET_TRAIN_LIST).write_text("train/a.png\n")  # never read: nothing to re-estimate
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8))
    model.input_normalization = "imagenet"
    before = {name: value.clone() for name, value in model.state_dict().items()}
    data = DataConfig("gta5", Path("src"), Path("missing"), lists, (8, 4), (4, 4), None)
    assert adabn.adapt_batchnorm(model, data, batch_size=2) == 0
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
