"""Supervised losses against a label-aware queue of momentum keys (SupCon's "MoCo trick"; H-SCL likewise).

    query (B, D) = normalize(head_q(backbone_q(x1)))        key (B, D) from the momentum encoder (x2)
    contrast = [keys of the global batch; queue rows]  with their labels (the queue stores them)
    loss = criterion(query, contrast, labels, contrast labels)       (synco.functional.queue_supervised)

The momentum encoder, key shuffle and enqueue are MoCo's (this class reuses them); each process computes
the loss of its own queries against the whole contrast set, and DDP averages, which is the loss of the
global batch. Tens of thousands of negatives instead of 2B - 2, at MoCo's cost.
"""

from __future__ import annotations

import torch

from synco import distributed
from synco.data.batch import Batch
from synco.memory import NegativeQueue
from synco.methods.base import StepContext
from synco.methods.encoder import build_encoder
from synco.methods.moco import MoCo
from synco.methods.outputs import QueueOutput


class QueueContrastive(MoCo):
    """A supervised criterion ``(query, contrast, labels, contrast_labels)`` over batch keys + queue."""

    negative_analyses = False  # no queue logits / synthetic negatives in the step's output
    needs_labels = True

    def training_step(self, batch: Batch, context: StepContext) -> QueueOutput:
        if batch.labels is None:
            raise ValueError(f"{type(self.criterion).__name__} needs labels, and this batch has none")
        images_q, images_k = batch.views
        query = self.encoder_q(images_q)  # (b, D)
        key = self.encode_keys(images_k, context.shuffle_generator or context.generator)  # (b, D), no gradient
        all_keys = distributed.all_gather_cat(key)  # (B, D)
        all_labels = distributed.all_gather_cat(batch.labels)  # (B,)
        contrast = torch.cat([all_keys, self.queue.keys.detach().to(all_keys.dtype)])  # (B + K, D)
        contrast_labels = torch.cat([all_labels, self.queue.labels])  # (B + K,)
        loss = self.criterion(query, contrast, batch.labels, contrast_labels)
        return QueueOutput(loss=loss, key=key)


def build_queue_method(context, criterion) -> QueueContrastive:
    """A :class:`QueueContrastive` from ``method.queue_size`` / ``method.momentum``, seeded by ``context.seed``."""
    cfg = context.cfg
    torch.manual_seed(context.seed)
    encoder = build_encoder(cfg, context.in_channels)
    queue = NegativeQueue(cfg.method.queue_size, cfg.model.embedding_dim,
                          generator=torch.Generator().manual_seed(context.seed + 1))
    return QueueContrastive(encoder, queue, criterion, cfg.method.momentum, shuffle_keys=cfg.model.shuffle_keys)
