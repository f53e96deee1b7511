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
from synco.data.loaders import LabelledDataset
from synco.data.transforms import eval_transform
from synco.eval import extract_features, knn_accuracy, raw_pixel_features


@torch.no_grad()
def _streamed_features(model, data, indices, mean, std, image_size, batch_size, device, workers) -> torch.Tensor:
    """Features of ``data``'s images at ``indices`` read from disk: resize, centre crop, normalise."""
    dataset = torch.utils.data.Subset(LabelledDataset(data, eval_transform(mean, std, image_size)), indices)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         pin_memory=str(device).startswith("cuda"))
    was_training = model.training
    model.eval()
    out = [model(images.to(device, non_blocking=True)).float().cpu() for images, _ in loader]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def sharded_features(
    model: nn.Module, data, mean: list[float], std: list[float], batch_size: int,
    device: torch.device | str, image_size: int | None = None, workers: int = 0,
) -> torch.Tensor:
    """(N, F) features of a split, each rank extracting every W-th image; all ranks get all rows."""
    world, rank = distributed.world_size(), distributed.rank()
    indices = list(range(rank, len(data), world))
    if data.in_memory:
        mine = extract_features(model, data.images[rank::world], mean, std, batch_size, device)  # (n_r, F)
    else:
        mine = _streamed_features(model, data, indices, mean, std, image_size, batch_size, device, workers)
    if world == 1:
        return mine
    gathered = distributed.all_gather_uneven(mine.to(device)).cpu()  # rank 0's rows, rank 1's rows, ...
    order = torch.cat([torch.arange(r, len(data), world) for r in range(world)])  # their image index
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
    image_size: int | None = None,
    workers: int = 0,
) -> dict[str, float]:
    """Weighted kNN top-1/top-5 (percent) of ``model``'s features; raw pixels when ``model`` is None.

    Splits held in memory are used as they are; splits read from disk are resized to
    ``image_size / 0.875`` and centre-cropped to ``image_size``, in ``workers`` DataLoader workers.
    """
    if model is None:
        bank, queries = raw_pixel_features(train.images, mean, std), raw_pixel_features(test.images, mean, std)
    else:
        extra = dict(image_size=image_size, workers=workers)
        bank = sharded_features(model, train, mean, std, batch_size, device, **extra)  # (M, F)
        queries = sharded_features(model, test, mean, std, batch_size, device, **extra)  # (T, F)
    return knn_accuracy(bank, train.labels, queries, test.labels, len(train.classes), k, temperature)
