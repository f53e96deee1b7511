"""kNN evaluation of an encoder on a data set's train (memory bank) and test splits.

With several processes each rank extracts the features of every W-th image and the shards are
gathered, so the memory bank is computed once in total; every rank then holds the same features
and computes the same accuracies.
"""

from __future__ import annotations

import torch
from torch import nn

from synco import distributed
from synco.data.datasets import ImageData
from synco.eval import extract_features, knn_accuracy, raw_pixel_features


def feature_model(method, feature: str) -> nn.Module:
    """The part of a MoCo method whose output kNN uses: ``backbone`` (F) or ``embedding`` (D, the head's output)."""
    return method.encoder_q.backbone if feature == "backbone" else method.encoder_q


def sharded_features(
    model: nn.Module, images: torch.Tensor, mean: list[float], std: list[float], batch_size: int,
    device: torch.device | str,
) -> torch.Tensor:
    """(N, F) features of ``images`` (N, C, H, W), each rank extracting every W-th image."""
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1:
        return extract_features(model, images, mean, std, batch_size, device)
    mine = extract_features(model, images[rank::world], mean, std, batch_size, device)  # (ceil, F)
    gathered = distributed.all_gather_uneven(mine.to(device)).cpu()  # rank 0's rows, rank 1's rows, ...
    order = torch.cat([torch.arange(r, images.shape[0], world) for r in range(world)])  # their image index
    features = torch.empty_like(gathered)
    features[order] = gathered
    return features


@torch.no_grad()
def sync_batchnorm_statistics(module: nn.Module) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics), which DDP does not broadcast here."""
    for buffer in module.buffers():
        distributed.broadcast_(buffer, src=0)


def knn_evaluate(
    model: nn.Module | None,
    train: ImageData,
    test: ImageData,
    mean: list[float],
    std: list[float],
    k: int,
    temperature: float,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Weighted kNN top-1/top-5 (percent) of ``model``'s features; raw pixels when ``model`` is None."""
    if model is None:
        bank, queries = raw_pixel_features(train.images, mean, std), raw_pixel_features(test.images, mean, std)
    else:
        bank = sharded_features(model, train.images, mean, std, batch_size, device)  # (M, F)
        queries = sharded_features(model, test.images, mean, std, batch_size, device)  # (T, F)
    return knn_accuracy(bank, train.labels, queries, test.labels, len(train.classes), k, temperature)
