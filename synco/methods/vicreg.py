"""VICReg (Bardes et al., 2022): invariance, variance and covariance terms on the expander's outputs.

The loss is :func:`synco.functional.vicreg_loss` over the global batch (``joint_embedding.JointEmbedding``).
The expander is the authors' ``Linear - BN - ReLU`` MLP with biases (``method.projector_layers`` Linear layers
of width ``method.projector_hidden``, ending in ``model.embedding_dim``; 8192-8192-8192 on ImageNet).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from synco.checks import at_least
from synco.functional import vicreg_loss
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.joint_embedding import JointEmbedding
from synco.models import batchnorm_mlp
from synco.registry import METHODS


@dataclass
class VICRegConfig:
    """``method:`` block of ``vicreg``."""

    name: str = "vicreg"  # variance-invariance-covariance regularisation, no negatives
    sim_coeff: float = 25.0  # lambda, the invariance (MSE) term
    std_coeff: float = 25.0  # mu, the variance hinge
    cov_coeff: float = 1.0  # nu, the off-diagonal covariance
    projector_hidden: int = 8192  # width of the expander's hidden layers
    projector_layers: int = 3  # Linear layers of the expander; its output is model.embedding_dim


def build_vicreg(context: BuildContext) -> JointEmbedding:
    torch.manual_seed(context.seed)
    cfg, m = context.cfg, context.cfg.method
    expander = functools.partial(_expander, hidden=m.projector_hidden, out=cfg.model.embedding_dim,
                                 layers=m.projector_layers)
    encoder = build_encoder(cfg, context.in_channels, head=expander, normalize=False)
    return JointEmbedding(encoder, functools.partial(vicreg_loss, sim_coeff=m.sim_coeff, std_coeff=m.std_coeff,
                                                     cov_coeff=m.cov_coeff))


def _expander(features: int, hidden: int, out: int, layers: int) -> torch.nn.Module:
    return batchnorm_mlp(features, hidden, out, layers, last_bias=True, hidden_bias=True)


def validate_vicreg(cfg) -> None:
    for key in ("method.sim_coeff", "method.std_coeff", "method.cov_coeff"):
        at_least(cfg, key, 0.0)
    at_least(cfg, "method.projector_hidden", 1)
    at_least(cfg, "method.projector_layers", 1)


METHODS.register("vicreg", MethodSpec(
    VICRegConfig, build_vicreg, validate_vicreg,
    "VICReg: invariance, variance and covariance terms, no negatives (Bardes et al., 2022)"))
