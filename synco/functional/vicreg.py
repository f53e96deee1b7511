"""VICReg's loss (Bardes et al., 2022): invariance, variance and covariance terms, as the authors' ``main_vicreg.py``.

    repr = MSE(z1, z2)                                          (mean over B and D)
    x = z1 - mean(z1), y = z2 - mean(z2)                        (column means over the batch)
    std  = mean(relu(1 - sqrt(var(x) + 1e-4))) / 2 + the same for y     (unbiased variance, per column)
    cov  = sum_{i != j} C(x)_ij^2 / D + the same for y,  C(x) = x^T x / (B - 1)
    L = sim_coeff * repr + std_coeff * std + cov_coeff * cov

The authors compute the invariance term on each rank's batch and the other two on the gathered batch; with
equal per-rank batches the mean of the ranks' MSEs is the global MSE, so ``z1`` and ``z2`` here are the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synco.functional.barlow_twins import off_diagonal


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> torch.Tensor:
    """VICReg's loss over the global batch.

    Args:
        z1, z2: (B, D) expander outputs of the two views, not normalised, B >= 2.
        sim_coeff, std_coeff, cov_coeff: the terms' weights (the authors' 25, 25, 1).

    Returns:
        The scalar loss.
    """
    batch, dim = z1.shape
    if batch < 2:
        raise ValueError(f"vicreg_loss needs at least 2 samples for the (co)variances, got {batch}")
    repr_loss = F.mse_loss(z1, z2)
    x, y = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std_x, std_y = torch.sqrt(x.var(dim=0) + 0.0001), torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = F.relu(1 - std_x).mean() / 2 + F.relu(1 - std_y).mean() / 2
    cov_x, cov_y = x.T @ x / (batch - 1), y.T @ y / (batch - 1)  # (D, D)
    cov_loss = off_diagonal(cov_x).pow(2).sum() / dim + off_diagonal(cov_y).pow(2).sum() / dim
    return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
