"""Projection heads."""

from __future__ import annotations

from torch import nn


def projection_head(in_dim: int, out_dim: int = 128, mlp: bool = True, hidden_dim: int | None = None) -> nn.Module:
    """MoCo-v2's 2-layer MLP head ``Linear(F, F) - ReLU - Linear(F, D)``, or MoCo-v1's linear one.

    Args:
        in_dim: F, backbone features.
        out_dim: D, embedding dimension (128 in MoCo-v2 and SynCo).
        mlp: True for MoCo-v2's MLP; False for a single linear layer.
        hidden_dim: hidden width; F when None (as in MoCo-v2).
    """
    if not mlp:
        return nn.Linear(in_dim, out_dim)
    hidden = hidden_dim or in_dim
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
