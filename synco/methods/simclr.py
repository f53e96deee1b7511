"""SimCLR (Chen et al., 2020): in-batch NT-Xent over the 2B views; no queue, no momentum encoder.

    z1 (B, D) = normalize(head(backbone(x1)))       z2 (B, D) = normalize(head(backbone(x2)))
    loss = NT-Xent(z1, z2) over the whole global batch (synco.functional.nt_xent_loss)

With synthetic negatives (``method.negatives.*``, off by default) every anchor z_i also gets SynCo's synthetic
negatives, made from its N hardest in-batch negatives (the other 2B - 2 views of the global batch: never
itself, never its own other view), detached as in SynCo, in the denominator only:
    l_i = -log e^{z_i.z_i+ / t} / (sum_{k != i} e^{z_i.z_k / t} + sum_s e^{z_i.s / t})
on the schedule of ``synco.negatives.schedule`` (warm-up, stop epoch, ramp).

With several processes the embeddings are gathered *with* their gradient, each process computes the
loss of its own anchors against the global batch, and DDP averages: W processes compute what one
process computes on the concatenated batch (tested with two gloo processes).

This file is the worked example of docs/architecture.md: a config block, a ``Method`` subclass, a
builder, one registration line, and a recipe in configs/pretrain/. No engine file knows it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from synco import distributed
from synco.checks import positive
from synco.data.batch import Batch
from synco.losses import NTXent
from synco.methods.base import BuildContext, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.outputs import EmbeddingOutput
from synco.methods.two_view import TwoViewContrastive
from synco.methods.in_batch_synthesis import InBatchNegativesConfig, build_in_batch_synthesis, check_in_batch_negatives
from synco.negatives import SyntheticNegatives
from synco.negatives.schedule import SynthesisSchedule
from synco.registry import METHODS


@dataclass
class SimCLRConfig:
    """``method:`` block of ``simclr``."""

    name: str = "simclr"  # in-batch NT-Xent over 2B views
    temperature: float = 0.5  # SimCLR's CIFAR-10 value (and solo-learn's CIFAR recipe is 0.2)
    # Synthetic negatives per anchor from its N hardest in-batch negatives (SynCo's six strategies), the same
    # keys as SynCo's method.negatives; every count 0 (the default): plain SimCLR
    negatives: InBatchNegativesConfig = field(default_factory=lambda: InBatchNegativesConfig())


class SimCLR(TwoViewContrastive):
    """SimCLR with MoCo-v2's MLP head (``model.mlp``) on any registered backbone.

    The two-view layout of ``two_view.TwoViewContrastive``, with NT-Xent computed for this process's
    anchors only (``nt_xent_loss_local``), which is cheaper than the whole global batch on every rank.

    Args:
        encoder: backbone + projection head, unit embeddings (B, D).
        criterion: loss of ``(z1, z2, all_z1, all_z2, offset)``; NT-Xent(0.5) by default.
    """

    def __init__(self, encoder: Encoder, criterion: NTXent | None = None,
                 negatives: SyntheticNegatives | None = None, schedule: SynthesisSchedule | None = None) -> None:
        super().__init__(encoder, criterion if criterion is not None else NTXent(0.5), needs_labels=False,
                         negatives=negatives, schedule=schedule)

    def training_step(self, batch: Batch, context: StepContext) -> EmbeddingOutput:
        """NT-Xent of this process's anchors against the global batch of both views (and, on the schedule's
        epochs, against each anchor's synthetic negatives)."""
        view_1, view_2 = batch.views
        z1, z2 = self.encoder(view_1), self.encoder(view_2)  # (b, D) each
        all_z1 = distributed.all_gather_with_grad(z1)  # (B, D), gradient flows back to every rank
        all_z2 = distributed.all_gather_with_grad(z2)  # (B, D)
        offset = distributed.rank() * z1.shape[0]
        synthetic = None
        if self.negatives is not None and self.schedule.active(context.epoch):
            self.negatives.counts = self.schedule.counts(context.epoch)
            synthetic = self.in_batch_synthetic_logits(z1, z2, all_z1, all_z2, offset, context.generator)
        return EmbeddingOutput(loss=self.criterion(z1, z2, all_z1, all_z2, offset, synthetic), z1=z1, z2=z2,
                               synthetic_logits=None if synthetic is None else synthetic.detach())


def build_simclr(context: BuildContext) -> SimCLR:
    """SimCLR with a fresh encoder, seeded by ``context.seed``."""
    torch.manual_seed(context.seed)
    encoder = build_encoder(context.cfg, context.in_channels)
    negatives, schedule = build_in_batch_synthesis(context.cfg.method.negatives)
    return SimCLR(encoder, NTXent(context.cfg.method.temperature), negatives, schedule)


def validate_simclr(cfg) -> None:
    positive(cfg, "method.temperature")
    check_in_batch_negatives(cfg)


METHODS.register("simclr", MethodSpec(SimCLRConfig, build_simclr, validate_simclr,
                                      "SimCLR: in-batch NT-Xent over 2B views (Chen et al., 2020)",
                                      continual_family="simclr"))
