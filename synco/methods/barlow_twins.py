"""Barlow Twins (Zbontar et al., 2021): the two views' cross-correlation driven to the identity.

The loss is :func:`synco.functional.barlow_twins_loss` over the global batch (``joint_embedding.JointEmbedding``).
The projector is the authors' ``Linear - BN - ReLU`` MLP without biases, ``method.projector_layers`` Linear
layers of width ``method.projector_hidden`` ending in ``model.embedding_dim`` (8192-8192-8192 on ImageNet).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from synco.checks import at_least
from synco.functional import barlow_twins_loss
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.joint_embedding import JointEmbedding
from synco.models import batchnorm_mlp
from synco.registry import METHODS


@dataclass
class BarlowTwinsConfig:
    """``method:`` block of ``barlow_twins``."""

    name: str = "barlow_twins"  # cross-correlation of the views' standardised projections towards the identity
    lambd: float = 0.0051  # weight of the off-diagonal (redundancy) term
    projector_hidden: int = 8192  # width of the projector's hidden layers
    projector_layers: int = 3  # Linear layers of the projector; its output is model.embedding_dim


def build_barlow_twins(context: BuildContext) -> JointEmbedding:
    torch.manual_seed(context.seed)
    cfg, m = context.cfg, context.cfg.method
    projector = functools.partial(_projector, hidden=m.projector_hidden, out=cfg.model.embedding_dim,
                                  layers=m.projector_layers)
    encoder = build_encoder(cfg, context.in_channels, head=projector, normalize=False)
    return JointEmbedding(encoder, functools.partial(barlow_twins_loss, lambd=m.lambd))


def _projector(features: int, hidden: int, out: int, layers: int) -> torch.nn.Module:
    return batchnorm_mlp(features, hidden, out, layers, last_bias=False)


def validate_barlow_twins(cfg) -> None:
    at_least(cfg, "method.lambd", 0.0)
    at_least(cfg, "method.projector_hidden", 1)
    at_least(cfg, "method.projector_layers", 1)


METHODS.register("barlow_twins", MethodSpec(
    BarlowTwinsConfig, build_barlow_twins, validate_barlow_twins,
    "Barlow Twins: the views' cross-correlation towards the identity, no negatives (Zbontar et al., 2021)"))
