"""The six SynCo strategies (section 4.1, Eq. 4-9) as pure functions.

Every function takes gathered source negatives and per-negative coefficients and returns
L2-normalised synthetic vectors. Shapes: query (B, D); sources (B, n, D); coefficients (B, n).
Callers detach the inputs: synthetic negatives carry no gradient (they are "features", not
functions of the query encoder), exactly as in the reference code's ``.clone().detach()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EXTRAPOLATION_MODES = ("paper", "reference")


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors, dim=-1)


def interpolate(query: torch.Tensor, negative: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Type 1, Eq. 4: ``s = alpha q + (1 - alpha) n``, alpha ~ U(0, alpha_max). Returns (B, n, D)."""
    a = alpha.unsqueeze(-1)  # (B, n, 1)
    return _unit(a * query.unsqueeze(1) + (1 - a) * negative)


def extrapolate(
    query: torch.Tensor, negative: torch.Tensor, beta: torch.Tensor, mode: str = "paper"
) -> torch.Tensor:
    """Type 2, Eq. 5: ``s = n + beta (n - q)``, beta ~ U(1, beta_max). Returns (B, n, D).

    ``mode="reference"`` computes ``q + beta (n - q)`` as the authors' code does (builder.py):
    a point beyond n as seen from q, but with a different weight on n (beta instead of 1 + beta).
    """
    b = beta.unsqueeze(-1)  # (B, n, 1)
    q = query.unsqueeze(1)  # (B, 1, D)
    if mode == "paper":
        return _unit(negative + b * (negative - q))
    if mode == "reference":
        return _unit(q + b * (negative - q))
    raise ValueError(f"extrapolation must be one of {EXTRAPOLATION_MODES}, got {mode!r}")


def mixup(first: torch.Tensor, second: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Type 3, Eq. 6: ``s = gamma n_i + (1 - gamma) n_j``, gamma ~ U(0, 1). Returns (B, n, D)."""
    g = gamma.unsqueeze(-1)  # (B, n, 1)
    return _unit(g * first + (1 - g) * second)


def add_noise(negative: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Type 4, Eq. 7: ``s = n + e``, e ~ N(0, sigma^2 I) drawn by the caller. Returns (B, n, D)."""
    return _unit(negative + noise)


def perturb(query: torch.Tensor, negative: torch.Tensor, delta: float) -> torch.Tensor:
    """Type 5, Eq. 8: ``s = n + delta grad_n sim(q, n)``.

    ``sim(q, n) = q.n`` for unit vectors (as in the reference code), so the gradient with respect to
    n is q and no autograd is needed. Returns (B, n, D).
    """
    return _unit(negative + delta * query.unsqueeze(1))


def adversarial(query: torch.Tensor, negative: torch.Tensor, eta: float) -> torch.Tensor:
    """Type 6, Eq. 9: ``s = n + eta sign(grad_n sim(q, n)) = n + eta sign(q)``. Returns (B, n, D)."""
    return _unit(negative + eta * torch.sign(query).unsqueeze(1))
