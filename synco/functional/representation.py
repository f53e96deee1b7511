"""Properties of the learned embedding on held-out images (SynCo section 6.2-6.3).

- Alignment and uniformity (Wang & Isola, 2020; SynCo Fig. 4), on L2-normalised embeddings:
  ``L_align = E ||f(x) - f(y)||^2`` over positive pairs (two augmentations of one image),
  ``L_uniform = log E exp(-2 ||f(x) - f(y)||^2)`` over all pairs of distinct images. Lower is better.
- Effective rank (Roy & Vetterli, 2007) of the centred embedding matrix: ``exp(H(p))`` with
  ``p_i = s_i / sum_j s_j`` the normalised singular values; D when every direction is used equally,
  1 under complete dimensional collapse.
- Class concentration (SynCo Fig. 5): for every class, the mean distance from its images to images of
  other classes divided by the mean distance between its own images; larger means tighter classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def alignment(x: torch.Tensor, y: torch.Tensor) -> float:
    """``E ||x_i - y_i||^2`` of row-aligned positive pairs (N, D), normalised here."""
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    return (x - y).pow(2).sum(dim=1).mean().item()


@torch.no_grad()
def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """``log E_{i<j} exp(-t ||x_i - x_j||^2)`` of (N, D) rows, normalised here."""
    x = F.normalize(x, dim=1)
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log().item()


@torch.no_grad()
def effective_rank(x: torch.Tensor) -> float:
    """``exp(entropy)`` of the normalised singular values of the centred (N, D) matrix."""
    singular = torch.linalg.svdvals(x - x.mean(dim=0, keepdim=True))
    p = singular / singular.sum()
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()


@torch.no_grad()
def class_distance_ratios(x: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per class (sorted by label): mean inter-class distance / mean intra-class distance, normalised rows."""
    x = F.normalize(x, dim=1)
    distances = torch.cdist(x, x)  # (N, N)
    ratios = []
    for c in torch.unique(labels).tolist():
        inside = labels == c
        n = int(inside.sum())
        if n < 2 or n == labels.numel():
            continue
        intra = distances[inside][:, inside].sum() / (n * (n - 1))  # the zero diagonal is excluded
        inter = distances[inside][:, ~inside].mean()
        ratios.append((inter / intra).item())
    return ratios
