"""Two views through one encoder, one loss over the whole global batch: HCL, SupCon, SCL and H-SCL.

    z1 (B, D) = normalize(head(backbone(x1)))       z2 (B, D) = normalize(head(backbone(x2)))
    loss = criterion(z1, z2, labels) over the global batch

With W processes every rank gathers the embeddings *with* their gradient (``all_gather_with_grad``) and
the labels, and computes the loss of the whole global batch. Its gradient reaches each rank's own rows W
times (the gather's backward sums over ranks) and DDP divides by W: the step equals one process on the
concatenated batch, whatever the loss couples (tilted means, label masks), at the price of each rank
evaluating the (2B x 2B) similarities itself, which is small beside the encoder.

With ``method.negatives`` (HCL, SupCon, H-SCL; ``synco.methods.in_batch_synthesis``) every anchor of the
global batch also gets SynCo's synthetic negatives from its N hardest in-batch negatives (other-class ones
only when the method has labels), in its denominator only. Each rank draws them for the whole global batch
from the rank-shared shuffle stream, so the ranks agree.
"""

from __future__ import annotations

import torch
from torch import nn

from synco import distributed
from synco.data.batch import Batch
from synco.methods.base import Method, StepContext
from synco.methods.encoder import Encoder
from synco.methods.outputs import EmbeddingOutput
from synco.negatives import SyntheticNegatives
from synco.negatives.schedule import SynthesisSchedule
from synco.negatives.sources import batch_pool


class TwoViewContrastive(Method):
    """A batch-negative method: ``criterion(all_z1, all_z2, all_labels)``.

    Args:
        encoder: backbone + projection head, unit embeddings (B, D).
        criterion: a loss module of ``(z1, z2, labels)`` (``synco.losses``).
        needs_labels: the criterion is supervised: the loop refuses data without labels.
    """

    def __init__(self, encoder: Encoder, criterion: nn.Module, needs_labels: bool,
                 negatives: SyntheticNegatives | None = None, schedule: SynthesisSchedule | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.criterion = criterion
        self.needs_labels = needs_labels
        self.negatives = negatives if negatives is not None and negatives.num_synthetic > 0 else None
        self.schedule = schedule or SynthesisSchedule(negatives.counts if negatives is not None else ())

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder

    def training_step(self, batch: Batch, context: StepContext) -> EmbeddingOutput:
        """The criterion of the global batch; ``z1``/``z2``: this process's embeddings (with their gradient)."""
        view_1, view_2 = batch.views
        z1, z2 = self.encoder(view_1), self.encoder(view_2)  # (b, D) each
        labels = None
        if self.needs_labels:
            if batch.labels is None:
                raise ValueError(f"{type(self.criterion).__name__} needs labels, and this batch has none")
            labels = distributed.all_gather_cat(batch.labels)  # (B,)
        all_z1 = distributed.all_gather_with_grad(z1)  # (B, D)
        all_z2 = distributed.all_gather_with_grad(z2)
        synthetic = None
        if self.negatives is not None and self.schedule.active(context.epoch):
            self.negatives.counts = self.schedule.counts(context.epoch)
            # Every rank evaluates the whole global batch, so every rank must draw the same negatives: the
            # shuffle stream is the one the ranks share.
            generator = context.shuffle_generator if context.shuffle_generator is not None else context.generator
            synthetic = self.in_batch_synthetic_logits(all_z1, all_z2, all_z1, all_z2, 0, generator, labels)
            loss = self.criterion(all_z1, all_z2, labels, synthetic)
        else:
            loss = self.criterion(all_z1, all_z2, labels)
        return EmbeddingOutput(loss=loss, z1=z1, z2=z2,  # this process's embeddings (regularisers and analyses)
                               synthetic_logits=None if synthetic is None else synthetic.detach())

    def in_batch_synthetic_logits(self, z1, z2, all_z1, all_z2, offset: int, generator,
                                  labels: torch.Tensor | None = None) -> torch.Tensor:
        """(2b, S) un-tempered logits of the anchors ``[z1; z2]`` (rows ``offset..offset + b`` of the global batch)
        against synthetic negatives made from each anchor's N hardest of the global batch's 2B views (detached):
        never its own two views and, with ``labels`` (B,), never a view of its class (``batch_pool``)."""
        anchors = torch.cat([z1, z2])  # (2b, D)
        pool = batch_pool(all_z1, all_z2, offset, z1.shape[0], labels)  # the global batch's 2B views
        return self.negatives.logits(anchors, pool.candidates, generator=generator,
                                     queue_logits=anchors @ pool.candidates.T, exclude=pool.exclude)

    def epoch_log(self, epoch: int) -> dict:
        """Whether synthesis ran in ``epoch`` and its counts (methods with ``method.negatives``)."""
        return self.schedule.log(epoch) if self.negatives is not None else {}
