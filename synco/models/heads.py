"""Projection heads and predictors: MoCo-v2's MLP (or MoCo-v1's linear head) and the batch-normalised MLPs of
the non-contrastive methods."""

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


def batchnorm_mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 3, last_batchnorm: bool = False,
                  last_bias: bool = True, hidden_bias: bool = False) -> nn.Sequential:
    """The batch-normalised MLP of SimSiam, Barlow Twins, VICReg, SwAV and BYOL's projectors and predictors.

    ``layers - 1`` blocks ``Linear(., hidden) - BatchNorm1d - ReLU``, then ``Linear(., out_dim)``, optionally
    followed by ``BatchNorm1d(out_dim, affine=False)`` (SimSiam's projector).

    Args:
        in_dim: F, the input features.
        hidden_dim: H of every hidden layer (Barlow Twins and VICReg: 8192 on ImageNet).
        out_dim: D, the output.
        layers: number of Linear layers, at least 1.
        last_batchnorm: end with an affine-free batch norm.
        last_bias: the last Linear has a bias (dropped where a batch norm follows).
        hidden_bias: the hidden Linears have a bias (redundant before batch norm; VICReg's code keeps it).
    """
    if layers < 1:
        raise ValueError(f"an MLP needs at least 1 layer, got {layers}")
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden_dim, bias=hidden_bias), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        width = hidden_dim
    blocks.append(nn.Linear(width, out_dim, bias=last_bias and not last_batchnorm))
    if last_batchnorm:
        blocks.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*blocks)
