"""SwAV (Caron et al., 2020): swapped prediction of online Sinkhorn-Knopp codes over learnable prototypes.

    z_v (B, D) = normalize(projector(backbone(x_v)))     scores_v = z_v C^T (B, P), C: P unit prototypes
    q_a = sinkhorn_knopp(scores_a) for the assigned crops a (codes, no gradient)
    loss = swav_loss(scores, crops_for_assign, temperature, ...)    (synco.functional.swav_loss)

Training details as the authors' ``main_swav.py``:
- the prototypes are re-normalised to unit rows after every optimizer step (and at the start);
- for the first ``method.freeze_prototypes_steps`` optimizer steps the prototypes receive no gradient (the
  authors set their gradient to None; here it is zero, which with the per-step re-normalisation leaves them where
  they are: weight decay only rescales them);
- from epoch ``method.queue_start_epoch`` on, the embeddings of the assigned crops of the last
  ``method.queue_size`` images are kept in a queue and, once it is full, their scores are prepended for
  Sinkhorn-Knopp (small batches get equipartitioned codes over more samples); 0 turns the queue off.

With W processes the embeddings are gathered with their gradient and every rank evaluates the loss of the whole
global batch, Sinkhorn-Knopp included (the authors all-reduce inside it): the step equals one process on the
concatenated batch, and the queue holds the global batch's embeddings, identical on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from synco import distributed
from synco.checks import ConfigError, at_least, positive
from synco.data.batch import Batch
from synco.data.views import view_specs
from synco.functional import swav_loss
from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.outputs import SwavOutput
from synco.models import batchnorm_mlp
from synco.registry import METHODS


@dataclass
class SwAVConfig:
    """``method:`` block of ``swav``."""

    name: str = "swav"  # swapped prediction of Sinkhorn-Knopp codes over prototypes
    num_prototypes: int = 3000  # P
    temperature: float = 0.1  # of the softmax over prototypes
    epsilon: float = 0.05  # Sinkhorn-Knopp's entropic regularisation
    sinkhorn_iterations: int = 3
    crops_for_assign: list = field(default_factory=lambda: [0, 1])  # crops whose codes the others predict
    projector_hidden: int = 2048  # hidden width of the Linear - BN - ReLU - Linear projector
    freeze_prototypes_steps: int = 313  # optimizer steps without prototype updates at the start
    queue_size: int = 0  # queued embeddings per assigned crop (the authors' 3840 at batch 256); 0: no queue
    queue_start_epoch: int = 15  # the queue fills from this (0-based) epoch on


class SwAV(Method):
    """SwAV on any registered backbone.

    Args:
        encoder: backbone + projector, unit embeddings (B, D).
        num_prototypes: P.
        crops_for_assign: crops whose codes are computed (indices into the batch's views).
        queue_size: Q, 0 for none.
    """

    def __init__(self, encoder: Encoder, dim: int, num_prototypes: int, temperature: float = 0.1,
                 epsilon: float = 0.05, sinkhorn_iterations: int = 3, crops_for_assign: tuple[int, ...] = (0, 1),
                 freeze_prototypes_steps: int = 0, queue_size: int = 0, queue_start_epoch: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.prototypes = nn.Linear(dim, num_prototypes, bias=False)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations
        self.crops_for_assign = tuple(crops_for_assign)
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.queue_start_epoch = queue_start_epoch
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue", torch.zeros(len(self.crops_for_assign), queue_size, dim))  # newest first
        self.register_buffer("queue_rows", torch.zeros((), dtype=torch.long))  # filled rows, at most Q
        self.normalize_prototypes()

    @property
    def online_encoder(self) -> Encoder:
        return self.encoder

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def _prototype_weight(self) -> torch.Tensor:
        weight = self.prototypes.weight  # (P, D)
        if int(self.steps_done) < self.freeze_prototypes_steps:
            return weight.detach() + 0 * weight  # zero gradient: DDP still sees every parameter used
        return weight

    def _embed(self, views: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Unit embeddings of every view; consecutive views of one size go through the encoder together (one
        batch-norm batch per resolution, as the authors' multi-crop forward)."""
        embeddings, start = [], 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            z = self.encoder(torch.cat(views[start:end]))  # ((end - start) b, D)
            embeddings += list(z.chunk(end - start))
            start = end
        return embeddings

    def training_step(self, batch: Batch, context: StepContext) -> SwavOutput:
        """``scores`` (V, B, P) of the global batch; ``z1``/``z2``: this process's embeddings of the first two crops."""
        if max(self.crops_for_assign) >= len(batch.views):
            raise ValueError(f"method.crops_for_assign={list(self.crops_for_assign)} names crops beyond the batch's "
                             f"{len(batch.views)} views")
        local = self._embed(batch.views)  # V x (b, D)
        embeddings = torch.stack([distributed.all_gather_with_grad(z) for z in local])  # (V, B, D)
        weight = self._prototype_weight()
        scores = embeddings @ weight.t()  # (V, B, P)
        queue_active = context.epoch >= self.queue_start_epoch and self.queue.shape[1] > 0
        queue_scores = None
        if queue_active and int(self.queue_rows) >= self.queue.shape[1]:
            queue_scores = self.queue @ weight.detach().t()  # (A, Q, P)
        loss = swav_loss(scores, self.crops_for_assign, self.temperature, self.epsilon, self.sinkhorn_iterations,
                         queue_scores)
        assigned = embeddings[list(self.crops_for_assign)].detach() if queue_active else None  # (A, B, D)
        return SwavOutput(loss=loss, z1=local[0], z2=local[1], scores=scores, assigned_embeddings=assigned)

    @torch.no_grad()
    def after_step(self, out: SwavOutput, batch: Batch) -> None:
        self.steps_done += 1
        self.normalize_prototypes()
        new = out.assigned_embeddings
        if new is not None:
            size, rows = self.queue.shape[1], new.shape[1]
            kept = max(size - rows, 0)
            self.queue[:, rows:] = self.queue[:, :kept].clone()
            self.queue[:, :min(rows, size)] = new[:, :size]
            self.queue_rows.fill_(min(int(self.queue_rows) + rows, size))

    def epoch_log(self, epoch: int) -> dict:
        return {"swav_queue_rows": int(self.queue_rows)} if self.queue.shape[1] else {}


def build_swav(context: BuildContext) -> SwAV:
    torch.manual_seed(context.seed)
    cfg, m = context.cfg, context.cfg.method
    dim = cfg.model.embedding_dim

    def projector(features: int) -> nn.Module:
        return batchnorm_mlp(features, m.projector_hidden, dim, layers=2, hidden_bias=True)

    encoder = build_encoder(cfg, context.in_channels, head=projector, normalize=True)
    return SwAV(encoder, dim, m.num_prototypes, m.temperature, m.epsilon, m.sinkhorn_iterations,
                tuple(m.crops_for_assign), m.freeze_prototypes_steps, m.queue_size, m.queue_start_epoch)


def validate_swav(cfg) -> None:
    at_least(cfg, "method.num_prototypes", 2)
    for key in ("method.temperature", "method.epsilon"):
        positive(cfg, key)
    for key in ("method.sinkhorn_iterations", "method.projector_hidden"):
        at_least(cfg, key, 1)
    for key in ("method.freeze_prototypes_steps", "method.queue_size", "method.queue_start_epoch"):
        at_least(cfg, key, 0)
    crops, views = list(cfg.method.crops_for_assign), len(view_specs(cfg.data))
    if not crops or len(set(crops)) != len(crops) or any(not isinstance(c, int) or not 0 <= c < views for c in crops):
        raise ConfigError(f"method.crops_for_assign={crops} must be distinct indices among the {views} views of "
                          "data.views (0 and 1: the global crops)")


METHODS.register("swav", MethodSpec(
    SwAVConfig, build_swav, validate_swav,
    "SwAV: swapped prediction of Sinkhorn-Knopp codes over prototypes (Caron et al., 2020)", multi_view=True))
