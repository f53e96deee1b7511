"""SimSiam (Chen & He, 2021): a predictor and a stop-gradient, no negatives, no momentum encoder.

    z = projector(backbone(x))        p = predictor(z)          (neither normalised)
    loss = -(cos(p1, sg z2) + cos(p2, sg z1)) / 2               (synco.functional.simsiam_loss)

As the authors' ``simsiam/builder.py``: the projector is ``method.projector_layers`` Linear layers (3 on
ImageNet, 2 in the paper's CIFAR-10 setting) with batch norm after every one, the last without affine
parameters; the predictor is ``Linear(D, H) - BN - ReLU - Linear(H, D)`` with H = ``method.predictor_hidden``
(512 for D = 2048). The loss is a mean over images, so W processes average to the global batch's loss without a
gather. The authors' ``--fix-pred-lr`` (a constant learning rate for the predictor) is not offered: the
predictor follows the schedule of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from synco.checks import at_least
from synco.data.batch import Batch
from synco.functional import simsiam_loss
from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.outputs import EmbeddingOutput
from synco.models import batchnorm_mlp
from synco.registry import METHODS


@dataclass
class SimSiamConfig:
    """``method:`` block of ``simsiam``."""

    name: str = "simsiam"  # a predictor against a stop-gradient, no negatives
    projector_hidden: int = 2048  # width of the projector's hidden layers (the backbone's F on ImageNet)
    projector_layers: int = 3  # Linear layers of the projector; its output is model.embedding_dim
    predictor_hidden: int = 512  # H, the predictor's bottleneck


class SimSiam(Method):
    """SimSiam on any registered backbone.

    Args:
        encoder: backbone + projector, raw projections (B, D).
        predictor: (B, D) -> (B, D).
    """

    def __init__(self, encoder: Encoder, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder

    def training_step(self, batch: Batch, context: StepContext) -> EmbeddingOutput:
        view_1, view_2 = batch.views
        z1, z2 = self.encoder(view_1), self.encoder(view_2)  # (b, D)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return EmbeddingOutput(loss=simsiam_loss(p1, p2, z1, z2), z1=z1, z2=z2, p1=p1, p2=p2)


def build_simsiam(context: BuildContext) -> SimSiam:
    torch.manual_seed(context.seed)
    cfg, m = context.cfg, context.cfg.method
    dim = cfg.model.embedding_dim

    def projector(features: int) -> nn.Module:
        return batchnorm_mlp(features, m.projector_hidden, dim, m.projector_layers, last_batchnorm=True)

    encoder = build_encoder(cfg, context.in_channels, head=projector, normalize=False)
    predictor = batchnorm_mlp(dim, m.predictor_hidden, dim, layers=2, last_bias=True)
    return SimSiam(encoder, predictor)


def validate_simsiam(cfg) -> None:
    for key in ("method.projector_hidden", "method.projector_layers", "method.predictor_hidden"):
        at_least(cfg, key, 1)


METHODS.register("simsiam", MethodSpec(
    SimSiamConfig, build_simsiam, validate_simsiam,
    "SimSiam: a predictor against a stop-gradient, no negatives, no momentum (Chen & He, 2021)"))
