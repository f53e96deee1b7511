"""Two views through one encoder with a batch-normalised projector, one loss of the whole global batch, no
negatives: Barlow Twins and VICReg.

    z1 (B, D) = projector(backbone(x1))       z2 (B, D) = projector(backbone(x2))      (not normalised)
    loss = criterion(all_z1, all_z2) over the global batch

With W processes every rank gathers the projections *with* their gradient (``all_gather_with_grad``) and
evaluates the loss of the whole global batch, whose statistics (Barlow Twins' cross-correlation, VICReg's
variances and covariances) couple every image; the gather's backward sums each rank's rows over the ranks and
DDP divides by W, so the step equals one process on the concatenated batch (the authors all-reduce ``c`` or
gather the embeddings for the same reason).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from synco import distributed
from synco.data.batch import Batch
from synco.methods.base import Method, StepContext
from synco.methods.encoder import Encoder
from synco.methods.outputs import EmbeddingOutput


class JointEmbedding(Method):
    """A negative-free two-view method: ``criterion(all_z1, all_z2)``.

    Args:
        encoder: backbone + projector, raw projections (B, D) (``Encoder(normalize=False)``).
        criterion: ``(z1, z2) -> scalar`` over the global batch (a ``synco.functional`` loss with its settings).
    """

    def __init__(self, encoder: Encoder, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.encoder = encoder
        self.criterion = criterion

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder

    def training_step(self, batch: Batch, context: StepContext) -> EmbeddingOutput:
        """The criterion of the global batch; ``z1``/``z2``: this process's projections (with their gradient)."""
        view_1, view_2 = batch.views
        z1, z2 = self.encoder(view_1), self.encoder(view_2)  # (b, D) each
        loss = self.criterion(distributed.all_gather_with_grad(z1), distributed.all_gather_with_grad(z2))
        return EmbeddingOutput(loss=loss, z1=z1, z2=z2)
