"""Linear probe on frozen features (MoCo's ``main_lincls`` protocol).

A single ``nn.Linear(F, C)`` trained with SGD (momentum 0.9, weight decay 0 by default), cross-entropy,
a per-epoch cosine learning-rate schedule, and top-1 / top-5 accuracy on the test split. The paper's
ImageNet protocol: 100 epochs, batch 256, lr 30 (ImageNet) or 10 (ImageNet-100), with random resized
crops and flips (then features cannot be cached; ``synco.eval.protocols.linear`` handles that case). Without
augmentation the features are computed once and this module trains on them directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def cosine_factor(epoch: int, epochs: int) -> float:
    """MoCo's per-epoch schedule ``0.5 (1 + cos(pi epoch / epochs))``."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


@torch.no_grad()
def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 (top-C when C < 5) accuracy in percent of (N, C) logits."""
    ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (N, 5)
    hits = ranked == labels.unsqueeze(1)
    n = labels.numel()
    return {"top1": 100.0 * hits[:, 0].sum().item() / n, "top5": 100.0 * hits.any(dim=1).sum().item() / n}


def train_linear_on_features(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 30.0,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``nn.Linear(F, C)`` on cached features; returns test top-1/top-5 in percent.

    Args:
        train_features: (N, F) frozen features (not normalised: MoCo's probe sees raw pooled features).
        train_labels: (N,) int64 in [0, C).
        test_features, test_labels: the evaluation split.
        seed: initialisation and batch order.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Linear(train_features.shape[1], num_classes)
    nn.init.normal_(head.weight, std=0.01, generator=g)  # as main_lincls: N(0, 0.01), bias 0
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = train_features.shape[0]
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_factor(epoch, epochs)
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(head(train_features[index]), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return topk_accuracy(head(test_features), test_labels)


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0
