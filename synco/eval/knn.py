"""Weighted kNN classifier (InstDisc; MoCo's CIFAR demo ``knn_predict``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(
    features: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Class scores by a similarity-weighted vote of the k nearest bank entries (cosine).

    ``score[c] = sum over the k neighbours with label c of exp(sim / t)``.

    Args:
        features: (B, F) unit rows.
        bank: (M, F) unit rows.
        bank_labels: (M,) int64.
        num_classes: C.
        k: neighbours (clipped to M).
        temperature: t.

    Returns:
        (B, C) scores; ``argmax`` is the prediction.
    """
    k = min(k, bank.shape[0])
    sim = features @ bank.T  # (B, M)
    top_sim, top_idx = sim.topk(k, dim=1)  # (B, k)
    top_labels = bank_labels[top_idx]  # (B, k)
    weights = (top_sim / temperature).exp()  # (B, k)
    one_hot = F.one_hot(top_labels, num_classes).to(weights.dtype)  # (B, k, C)
    return torch.einsum("bk,bkc->bc", weights, one_hot)  # (B, C)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent of :func:`knn_predict`; features are L2-normalised here."""
    bank = F.normalize(train_features.float(), dim=1)  # (M, F)
    test = F.normalize(test_features.float(), dim=1)  # (T, F)
    top1 = top5 = 0
    for start in range(0, test.shape[0], chunk):
        scores = knn_predict(test[start : start + chunk], bank, train_labels, num_classes, k, temperature)
        ranked = scores.topk(min(5, num_classes), dim=1).indices  # (b, 5)
        labels = test_labels[start : start + chunk].unsqueeze(1)  # (b, 1)
        top1 += (ranked[:, :1] == labels).sum().item()
        top5 += (ranked == labels).any(dim=1).sum().item()
    n = test.shape[0]
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n}
