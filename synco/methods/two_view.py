"""Two views through one encoder, one loss over the whole global batch: HCL, SupCon, SCL and H-SCL.

    z1 (B, D) = normalize(head(backbone(x1)))       z2 (B, D) = normalize(head(backbone(x2)))
    loss = criterion(z1, z2, labels) over the global batch

With W processes every rank gathers the embeddings *with* their gradient (``all_gather_with_grad``) and
the labels, and computes the loss of the whole global batch. Its gradient reaches each rank's own rows W
times (the gather's backward sums over ranks) and DDP divides by W: the step equals one process on the
concatenated batch, whatever the loss couples (tilted means, label masks), at the price of each rank
evaluating the (2B x 2B) similarities itself, which is small beside the encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from synco import distributed
from synco.data.batch import Batch
from synco.methods.base import Method, StepContext
from synco.methods.encoder import Encoder
from synco.methods.outputs import EmbeddingOutput


class TwoViewContrastive(Method):
    """A batch-negative method: ``criterion(all_z1, all_z2, all_labels)``.

    Args:
        encoder: backbone + projection head, unit embeddings (B, D).
        criterion: a loss module of ``(z1, z2, labels)`` (``synco.losses``).
        needs_labels: the criterion is supervised: the loop refuses data without labels.
    """

    def __init__(self, encoder: Encoder, criterion: nn.Module, needs_labels: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.criterion = criterion
        self.needs_labels = needs_labels

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
        loss = self.criterion(all_z1, all_z2, labels)
        return EmbeddingOutput(loss=loss, z1=z1, z2=z2)  # this process's embeddings (regularisers and analyses)
