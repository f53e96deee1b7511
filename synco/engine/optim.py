"""The pretraining optimizer and learning-rate schedule, chosen by ``train.*``.

- ``sgd`` (default): MoCo's SGD with momentum and weight decay.
- ``lars``: timm's LARS (You et al., 2017), as SimCLR at large batch and CaSSLe/PNR use it (trust
  coefficient ``train.lars_trust_coefficient``, LARC clipping ``train.lars_clip``).
- ``adam`` / ``adamw``: torch's, as HCL's recipe (Adam, lr 1e-3).

``train.exclude_bias_and_norm`` puts biases and normalisation weights (every parameter with fewer than
two dimensions) in a group without weight decay; timm's LARS adapts only groups with weight decay, so
they get no LARS adaptation either (SimCLR's and solo-learn's ``exclude_bias_n_norm``).

The schedule is per epoch: ``train.lr_warmup_epochs`` of linear warm-up, then cosine (or constant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from omegaconf import DictConfig

from synco.config import OPTIMIZERS



def lr_factor(epoch: int, epochs: int, schedule: str, warmup_epochs: int = 0) -> float:
    """Factor of the base learning rate in ``epoch`` (0-based).

    ``(epoch + 1) / warmup_epochs`` during the warm-up; then MoCo's cosine
    ``0.5 (1 + cos(pi e / E))`` over the remaining ``E = epochs - warmup_epochs`` epochs (``e`` counted from
    the warm-up's end), or 1 for ``constant``. Without warm-up this is MoCo's schedule exactly.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    if schedule == "constant" or epochs - warmup_epochs <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


def parameter_groups(parameters: Iterable[torch.nn.Parameter], weight_decay: float,
                     exclude_bias_and_norm: bool) -> list[dict]:
    """One group with ``weight_decay``, or two: weights, and biases + normalisation weights without decay."""
    parameters = list(parameters)
    if not exclude_bias_and_norm:
        return [{"params": parameters, "weight_decay": weight_decay}]
    decayed = [p for p in parameters if p.dim() > 1]
    exempt = [p for p in parameters if p.dim() <= 1]
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]


def build_optimizer(parameters: Iterable[torch.nn.Parameter], train: DictConfig) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` over ``parameters`` (a method's ``trainable_parameters()``).

    Raises:
        ValueError: an unknown ``train.optimizer`` (the configuration check names it first).
    """
    groups = parameter_groups(parameters, train.weight_decay, train.exclude_bias_and_norm)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    if train.optimizer == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=train.lr, momentum=train.momentum, trust_coeff=train.lars_trust_coefficient,
                    trust_clip=train.lars_clip)
    if train.optimizer == "adam":
        return torch.optim.Adam(groups, lr=train.lr)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=train.lr)
    raise ValueError(f"train.optimizer={train.optimizer!r} is not one of {OPTIMIZERS}")
