"""data.train_crop: seeded per-item crops of images and labels together, reproducible and resumable."""

import copy

import pytest
import torch
import yaml

from globallocal.config import parse
from globallocal.data.crops import SeededCrops, crop_item, crop_offsets, training_crops
from globallocal.data.loading import train_loader
from globallocal.data.order import DataStream
from globallocal.errors import UserError
from support.tiny_project import REPO

HEIGHT, WIDTH = 12, 10
CROP = (6, 8)  # (width, height)


class Coded:
    """5 items whose (3, H, W) image and (H, W) label both encode each pixel's position (row * W + col)."""

    names = [f"item{i}" for i in range(5)]

    def __len__(self):
        return 5

    def __getitem__(self, index):
        code = torch.arange(HEIGHT * WIDTH).view(HEIGHT, WIDTH) + 1000 * index
        return {"image": code.float().expand(3, HEIGHT, WIDTH).clone(), "label": code.clone(),
                "pseudo_label": code.clone(), "name": self.names[index]}


def test_a_crop_cuts_image_and_labels_at_the_same_window():
    item = crop_item(Coded()[2], CROP, seed=7)
    assert item["image"].shape == (3, 8, 6) and item["label"].shape == (8, 6) and item["pseudo_label"].shape == (8, 6)
    assert torch.equal(item["image"][0].long(), item["label"]) and torch.equal(item["label"], item["pseudo_label"])
    top, left = divmod(int(item["label"][0, 0]) - 2000, WIDTH)
    assert (top, left) == crop_offsets(HEIGHT, WIDTH, CROP, 7)
    expected = torch.arange(HEIGHT * WIDTH).view(HEIGHT, WIDTH)[top:top + 8, left:left + 6] + 2000
    assert torch.equal(item["label"], expected) and item["name"] == "item2"


def test_offsets_depend_on_the_seed_alone_and_cover_every_position():
    torch.manual_seed(0)
    first = crop_offsets(HEIGHT, WIDTH, CROP, 123)
    torch.manual_seed(99)  # global RNG state plays no part
    assert crop_offsets(HEIGHT, WIDTH, CROP, 123) == first
    seen = {crop_offsets(HEIGHT, WIDTH, CROP, seed) for seed in range(400)}
    assert seen == {(top, left) for top in range(HEIGHT - 8 + 1) for left in range(WIDTH - 6 + 1)}
    assert crop_offsets(8, 6, CROP, 5) == (0, 0)  # a crop of the whole map


def test_a_crop_larger_than_the_image_names_the_key():
    with pytest.raises(UserError, match="data.train_crop"):
        crop_offsets(HEIGHT, WIDTH, (WIDTH + 1, 4), 0)


def crops_of(loader, batches):
    stream = DataStream(loader)
    return [next(stream)["label"][:, 0, 0].tolist() for _ in range(batches)]


def test_the_loader_crops_reproducibly_and_differently_each_pass():
    dataset = SeededCrops(Coded(), CROP)
    one, two = crops_of(train_loader(dataset, 2, 0, 0), 6), crops_of(train_loader(dataset, 2, 0, 0), 6)
    assert one == two
    # 2 full batches a pass: passes 1-3 crop the same items at (almost surely) other offsets
    firsts = [sorted(one[2 * p] + one[2 * p + 1]) for p in range(3)]
    assert len({tuple(f) for f in firsts}) == 3
    assert crops_of(train_loader(dataset, 2, 1, 0), 6) != one  # another seed, other order and crops


def test_a_restored_stream_crops_as_the_uninterrupted_one():
    dataset = SeededCrops(Coded(), CROP)
    reference = crops_of(train_loader(dataset, 2, 0, 0), 7)
    stream = DataStream(train_loader(dataset, 2, 0, 0))
    for _ in range(3):
        next(stream)
    position = copy.deepcopy(stream.position())
    resumed = DataStream(train_loader(dataset, 2, 0, 0))
    resumed.restore(position)
    assert [next(resumed)["label"][:, 0, 0].tolist() for _ in range(4)] == reference[3:]


def test_without_a_crop_the_dataset_is_unchanged_and_a_crop_keeps_the_first_pass_order():
    dataset = Coded()
    assert training_crops(dataset, None) is dataset
    plain = [[code // 1000 for code in batch["label"][:, 0, 0].tolist()] for batch in train_loader(dataset, 2, 0, 0)]
    cropped = [[code // 1000 for code in batch["label"][:, 0, 0].tolist()]
               for batch in train_loader(SeededCrops(dataset, CROP), 2, 0, 0)]
    assert len(plain) == 2 and cropped == plain  # the seeds are drawn after the pass's permutation


def params_with(**data):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data)
    return params


def test_a_crop_that_does_not_fit_both_sizes_is_refused():
    with pytest.raises(UserError, match=r"data.train_crop.*data.source_size"):
        parse(params_with(train_crop=[200, 96]))
    with pytest.raises(UserError, match=r"data.train_crop.*data.target_size"):
        parse(params_with(train_crop=[192, 100]))
    assert parse(params_with(train_crop=None)).data.train_crop is None
    with pytest.raises(UserError, match="or null"):
        parse(params_with(train_crop=[192]))


def test_the_domain_probe_must_fit_its_map_whatever_the_family():
    params = params_with(train_crop=[96, 48])
    params["adapt"].update(global_family="minent", global_d_pool=3)  # no D_g, but the probe: a 32x16 map
    with pytest.raises(UserError, match=r"data.train_crop.*adapt.global_d_pool.*domain probe"):
        parse(params)
    params["adapt"]["global_d_pool"] = 1
    assert parse(params).data.train_crop == (96, 48)
