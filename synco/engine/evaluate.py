"""kNN evaluation of an encoder on a data set's train (memory bank) and test splits."""

from __future__ import annotations

import torch
from torch import nn

from synco.data.datasets import ImageData
from synco.eval import extract_features, knn_accuracy, raw_pixel_features


def feature_model(method, feature: str) -> nn.Module:
    """The part of a MoCo method whose output kNN uses: ``backbone`` (F) or ``embedding`` (D, the head's output)."""
    return method.encoder_q.backbone if feature == "backbone" else method.encoder_q


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
        bank = extract_features(model, train.images, mean, std, batch_size, device)  # (M, F)
        queries = extract_features(model, test.images, mean, std, batch_size, device)  # (T, F)
    return knn_accuracy(bank, train.labels, queries, test.labels, len(train.classes), k, temperature)
