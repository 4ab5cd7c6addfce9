"""AdaBN as a pipeline step: a trained model's BatchNorm statistics re-estimated on the target train images.

The baseline every alignment result is compared with: it takes the one adaptation channel that needs no
loss at all (target statistics in BatchNorm) and nothing else. Only the unlabelled target train split
is read, never the dev or val images that models are chosen and scored on.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from globallocal.data.file_lists import TARGET_TRAIN_LIST, read_list
from globallocal.data.loading import DataConfig, target_dataset
from globallocal.models.normalization import batchnorm_layers, reestimate_batchnorm


def target_train_images(data: DataConfig, normalization: str, batch_size: int):
    """Batches of (N, 3, H, W) target train images at ``data.target_size`` (as training sees them), in list order."""
    names = read_list(data.lists_dir / TARGET_TRAIN_LIST)
    dataset = target_dataset(data.target_root, "train", names, data.target_size, normalization, with_labels=False)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        yield batch["image"]


def adapt_batchnorm(model: torch.nn.Module, data: DataConfig, batch_size: int,
                    device: torch.device | str = "cpu") -> int:
    """Re-estimate every BatchNorm's statistics of ``model`` on target train (reestimate_batchnorm);
    returns the number of batches used. Parameters are untouched; the model ends in eval mode.

    A model with no running statistics (bn_protocol frozen, norm group) is returned unchanged (0 batches):
    its AdaBN row is its source-only row, so every setting still runs the whole pipeline.
    """
    model.to(device)
    if not batchnorm_layers(model):
        model.eval()
        return 0
    return reestimate_batchnorm(model, target_train_images(data, model.input_normalization, batch_size), device)
