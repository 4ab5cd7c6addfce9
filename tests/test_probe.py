"""The evaluate stage's domain probe: held-out ROC AUC of a fresh discriminator on a model's outputs."""

import torch

from globallocal.evaluation.probe import ProbeConfig, common_size, domain_probe, output_maps, roc_auc
from support.tiny_models import K, TinySegmenter

CONFIG = ProbeConfig(steps=150, batch_size=8, width=8, lr=1e-3, pool=1, seed=0)
N, SIZE = 40, 32


def layout_maps(n: int, top_class: int, seed: int) -> torch.Tensor:
    """(n, K, SIZE, SIZE) softmax-like maps: ``top_class`` over a random horizon, class 1 - top_class below."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(n, K, SIZE, SIZE)
    for i in range(n):
        horizon = int(torch.randint(SIZE // 4, 3 * SIZE // 4, (), generator=g))
        maps[i, top_class, :horizon] = 1.0
        maps[i, 1 - top_class, horizon:] = 1.0
    return 0.9 * maps + 0.1 * torch.rand(maps.shape, generator=g)


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    assert roc_auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert roc_auc(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 2.0])) == 0.875  # (1 + 1 + 0.5 + 1) / 4


def test_the_probe_separates_outputs_whose_layouts_differ_and_not_identical_ones():
    """Same class shares in both domains, the classes' vertical order swapped: the probe finds it."""
    swapped = domain_probe(layout_maps(N, 0, seed=1), layout_maps(N, 1, seed=2), CONFIG)
    same = domain_probe(layout_maps(N, 0, seed=1), layout_maps(N, 0, seed=2), CONFIG)
    assert swapped["auc"] > 0.95 and swapped["held_out_loss"] < 0.4
    assert 0.25 < same["auc"] < 0.75 and same["held_out_loss"] > 0.6
    assert [fold["held_out_images"] for fold in swapped["folds"]] == [[N // 2, N // 2]] * 2


def test_the_probe_is_deterministic():
    source, target = layout_maps(N, 0, seed=1), layout_maps(N, 1, seed=2)
    torch.manual_seed(123)
    first = domain_probe(source, target, CONFIG)
    torch.manual_seed(456)  # global RNG state plays no part
    assert domain_probe(source, target, CONFIG) == first


class Images:
    def __init__(self, n, height, width):
        self.items = [{"image": torch.randn(3, height, width, generator=torch.Generator().manual_seed(i))}
                      for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_output_maps_cut_both_domains_to_one_size_and_pool_as_d_g_does():
    assert common_size([(192, 108), (192, 96)], None) == (192, 96)
    assert common_size([(192, 108), (192, 96)], (160, 80)) == (160, 80)
    torch.manual_seed(0)
    model = TinySegmenter()
    maps = output_maps(model, Images(12, 40, 36), (32, 32), pool=2, device=torch.device("cpu"))
    assert maps.shape == (12, K, 16, 16)
    assert torch.allclose(maps.sum(dim=1), torch.ones(12, 16, 16), atol=1e-5)  # pooled softmax
