"""BYOL (Grill et al., 2020): no negatives; an online encoder with a predictor regresses a momentum target.

    z = head(backbone(x))       p = predictor(z)       t = momentum copy of backbone + head (no gradient)
    loss = D(p1, t2) + D(p2, t1),   D(a, b) = 2 - 2 cos(a, b) (mean over the batch)

The sum of the two directions, as solo-learn's and CaSSLe's BYOL (the base PNR's BYOL regulariser is built
on); the target's momentum rises on a cosine from ``method.momentum`` to ``method.momentum_end`` (0.99 -> 1.0
in their scripts). The projection head is MoCo-v2's MLP (``model.mlp``) of the shared ``Encoder``, whose output is
L2-normalised (BYOL's projector has batch norm and feeds the predictor unnormalised: a difference, harmless to the
cosine loss but not to the predictor's input scale), and the predictor is Linear(D, H) - BatchNorm1d - ReLU -
Linear(H, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from synco.checks import ConfigError, at_least
from synco.data.batch import Batch
from synco.functional import byol_loss
from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.outputs import EmbeddingOutput
from synco.models.momentum import momentum_copy, update_momentum
from synco.registry import METHODS


@dataclass
class BYOLConfig:
    """``method:`` block of ``byol``."""

    name: str = "byol"  # online network + predictor regressing a momentum target, no negatives
    momentum: float = 0.99  # the target's momentum at the start
    momentum_end: float = 1.0  # ... rising on a cosine to this at the end of training
    predictor_hidden: int = 4096  # H of the predictor (CaSSLe's CIFAR BYOL: 4096)


class BYOL(Method):
    """BYOL on any registered backbone.

    Args:
        encoder: backbone + projection head (unit outputs).
        predictor: online predictor of the target's projection.
        momentum, momentum_end: the target's momentum schedule (cosine over the run's progress).
    """

    def __init__(self, encoder: Encoder, predictor: nn.Module, momentum: float = 0.99, momentum_end: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor
        self.target = momentum_copy(encoder)
        self.momentum, self.momentum_end = momentum, momentum_end

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder

    def trainable_parameters(self):
        return [*self.encoder.parameters(), *self.predictor.parameters()]

    def momentum_at(self, progress: float) -> float:
        return self.momentum_end - (self.momentum_end - self.momentum) * (math.cos(math.pi * progress) + 1) / 2

    def training_step(self, batch: Batch, context: StepContext) -> EmbeddingOutput:
        view_1, view_2 = batch.views
        z1, z2 = self.encoder(view_1), self.encoder(view_2)  # (b, D)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            t1, t2 = self.target(view_1), self.target(view_2)
        return EmbeddingOutput(loss=byol_loss(p1, p2, t1, t2), z1=z1, z2=z2, p1=p1, p2=p2,
                               momentum=self.momentum_at(context.progress))

    def after_step(self, out: EmbeddingOutput, batch: Batch) -> None:
        update_momentum(self.encoder, self.target, out.momentum)


def build_byol(context: BuildContext) -> BYOL:
    torch.manual_seed(context.seed)
    cfg = context.cfg
    encoder = build_encoder(cfg, context.in_channels)
    dim, hidden = cfg.model.embedding_dim, cfg.method.predictor_hidden
    predictor = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
    return BYOL(encoder, predictor, cfg.method.momentum, cfg.method.momentum_end)


def validate_byol(cfg) -> None:
    at_least(cfg, "method.predictor_hidden", 1)
    if not 0 <= cfg.method.momentum <= cfg.method.momentum_end <= 1:
        raise ConfigError(f"method.momentum={cfg.method.momentum} and method.momentum_end={cfg.method.momentum_end} "
                          "must satisfy 0 <= momentum <= momentum_end <= 1")


METHODS.register("byol", MethodSpec(BYOLConfig, build_byol, validate_byol,
                                    "BYOL: a predictor regressing a momentum target, no negatives (Grill et al., 2020)",
                                    continual_family="byol"))
