"""Momentum (exponential moving average) encoders: MoCo's key encoder, BYOL's target network."""

from __future__ import annotations

import copy

import torch
from torch import nn


def momentum_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters take no gradient (the momentum encoder at step 0)."""
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def update_momentum(model: nn.Module, model_ema: nn.Module, momentum: float) -> None:
    """``theta_ema <- m theta_ema + (1 - m) theta`` over parameters only (MoCo Eq. 2).

    Buffers (batch-norm running statistics) are not averaged, as in MoCo: the momentum encoder's
    come from its own forward passes.

    Args:
        model: the online encoder, read.
        model_ema: its momentum copy, updated in place; same parameter layout as ``model``.
        momentum: m in [0, 1]; 1 freezes ``model_ema``, 0 copies ``model``.
    """
    for p_ema, p in zip(model_ema.parameters(), model.parameters()):
        p_ema.mul_(momentum).add_(p.detach(), alpha=1 - momentum)
