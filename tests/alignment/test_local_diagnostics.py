"""The local term's filter precision on labelled target images, on a hand-made probability map."""

import torch
from torch import nn

from globallocal.evaluation.local_diagnostics import FilterPrecision, local_filter_precision

K = 3
NAMES = ("road", "car", "sky")


def prob_map(cells: list[list[tuple[float, float, float]]], window: int) -> torch.Tensor:
    """(1, K, h*window, w*window) probabilities, constant inside each window x window cell."""
    grid = torch.tensor(cells, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)  # (1, K, h, w)
    return grid.repeat_interleave(window, dim=2).repeat_interleave(window, dim=3)


def test_precision_and_share_kept_on_a_hand_made_map():
    # Four 2x2 cells: confident road (label road), confident car (label road: wrong),
    # unconfident sky (dropped by the filter), confident sky (label ignore: kept but not scored).
    prob = prob_map([[(0.95, 0.05, 0.0), (0.0, 0.92, 0.08)], [(0.2, 0.3, 0.5), (0.0, 0.0, 1.0)]], window=2)
    labels = torch.tensor([[[0, 0, 0, 0],
                            [0, 0, 0, 0],
                            [2, 2, 255, 255],
                            [2, 2, 255, 255]]])
    counts = FilterPrecision(K)
    counts.update(prob, labels, window=2, conf_threshold=0.9, min_purity=0.5)
    result = counts.to_dict(NAMES)
    assert (result["cells"], result["kept"], result["scored"]) == (4, 3, 2)
    assert result["share_kept"] == 0.75 and result["precision"] == 0.5
    assert result["per_class"] == {
        "road": {"kept": 1, "precision": 1.0},
        "car": {"kept": 1, "precision": 0.0},
        "sky": {"kept": 1, "precision": None},  # its only kept cell has no ground-truth class
    }


def test_impure_cells_have_no_ground_truth_and_counts_accumulate_over_batches():
    prob = prob_map([[(1.0, 0.0, 0.0)]], window=2)
    impure = torch.tensor([[[0, 1], [2, 255]]])  # majority share 1/4 < 0.5
    pure = torch.tensor([[[0, 0], [0, 1]]])  # road 3/4
    counts = FilterPrecision(K)
    counts.update(prob, impure, 2, 0.9, 0.5)
    counts.update(prob, pure, 2, 0.9, 0.5)
    result = counts.to_dict(NAMES)
    assert (result["cells"], result["kept"], result["scored"], result["precision"]) == (2, 2, 1, 1.0)


class FixedLogits(nn.Module):
    """A 'model' whose main head gives the same (1, K, 2, 2) logits whatever the image (upsampled x2)."""

    def forward(self, images):
        main = torch.tensor([[10.0, 0.0], [0.0, 0.0]]).expand(images.shape[0], 1, 2, 2)
        logits = torch.cat([main, torch.zeros_like(main), torch.zeros_like(main)], dim=1)
        return logits, logits


def test_model_outputs_are_upsampled_to_the_labels_and_filtered():
    # Logits 10 at the top-left feature cell only: after align_corners upsampling to 4x4 and softmax, only
    # the top-left 2x2 window is confidently road; with window 2 that is the one kept cell.
    dataset = [{"image": torch.zeros(3, 4, 4), "label": torch.zeros(4, 4, dtype=torch.int64)}]
    result = local_filter_precision(FixedLogits(), dataset, "cpu", 2, 0.9, 0.5, K).to_dict(NAMES)
    assert (result["cells"], result["kept"], result["precision"]) == (4, 1, 1.0)
