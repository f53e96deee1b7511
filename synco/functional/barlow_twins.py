"""Barlow Twins' loss (Zbontar et al., 2021): the cross-correlation of the two views' standardised embeddings
driven to the identity.

    c = BN(z1)^T BN(z2) / B                 (D, D); BN: batch statistics, no affine, eps 1e-5
    L = sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2

as the authors' ``main.py`` (``self.bn = nn.BatchNorm1d(D, affine=False)`` under SyncBatchNorm, ``c`` divided
by the global batch size and summed over ranks): ``z1`` and ``z2`` here are the whole global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square (D, D) matrix as a flat (D * (D - 1),) tensor."""
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Batch norm in training mode without affine parameters: (z - mean) / sqrt(biased var + eps), per column."""
    return F.batch_norm(z, None, None, training=True, eps=eps)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051) -> torch.Tensor:
    """Barlow Twins' redundancy-reduction loss over the global batch.

    Args:
        z1, z2: (B, D) projector outputs of the two views of the same B images, not normalised, B >= 2.
        lambd: weight of the off-diagonal (redundancy) term; the authors' 0.0051.

    Returns:
        The scalar loss (not averaged over D, as the authors').
    """
    if z1.shape[0] < 2:
        raise ValueError(f"barlow_twins_loss needs at least 2 samples for batch statistics, got {z1.shape[0]}")
    c = standardise(z1).T @ standardise(z2) / z1.shape[0]  # (D, D)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    return on_diag + lambd * off_diagonal(c).pow(2).sum()
