"""The first stage of the negative pipeline: where a step's hard negatives come from.

    source (a pool of candidates, and what each anchor may not use)
      -> hardest-N selection -> the six strategies -> logits -> loss     (synco.negatives.SyntheticNegatives)

A :class:`NegativePool` is the candidates (M, D) and an exclusion mask (A, M) over them, one row per anchor:

    queue_pool   the momentum queue (MoCo, SynCo, MoCo-v2+, PNR's queues), minus each query's own image's
                 older keys and, label-aware, the rows of its class
    batch_pool   the global batch's 2B views (SimCLR and the in-batch losses): each anchor's own view and its
                 other view are never candidates; label-aware, no view of its class is either

The selection and synthesis never draw an excluded candidate; the loss's own masking (of same-image queue
keys) is the method's business.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class NegativePool:
    """The candidates of one step's synthetic negatives.

    Attributes:
        candidates: (M, D) detached unit rows.
        exclude: (A, M) bool, True where anchor a may not use candidate m (selection and sources), or None.
    """

    candidates: torch.Tensor
    exclude: torch.Tensor | None = None


def _either(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a | b


def queue_pool(keys: torch.Tensor, same_image: torch.Tensor | None = None,
               same_class: torch.Tensor | None = None) -> NegativePool:
    """The queue as a pool.

    Args:
        keys: (K, D) the queue's keys.
        same_image: optional (B, K) bool, the queries' own images' older keys.
        same_class: optional (B, K) bool, the rows of each query's class (label-aware synthesis).
    """
    return NegativePool(keys.detach(), _either(same_image, same_class))


def batch_pool(all_z1: torch.Tensor, all_z2: torch.Tensor, offset: int, local: int,
               labels: torch.Tensor | None = None) -> NegativePool:
    """The global batch's views as a pool for this process's anchors ``[z1; z2]``.

    Args:
        all_z1, all_z2: (B, D) the global batch's two views (rank order).
        offset: the row of this process's first image in the global batch.
        local: b, this process's images; its anchors are rows [offset, offset + b) of view 1, then of view 2.
        labels: optional (B,) classes of the global batch: candidates of an anchor's class are excluded too.

    Returns:
        candidates (2B, D) = [all_z1; all_z2] detached, and exclude (2b, 2B): an anchor's own view, its other
        view and (with ``labels``) every view of its class.
    """
    big_b = all_z1.shape[0]
    candidates = torch.cat([all_z1, all_z2]).detach()  # (2B, D)
    own = torch.arange(local, device=all_z1.device) + offset  # (b,) the anchors' images
    self_column, positive_column = torch.cat([own, own + big_b]), torch.cat([own + big_b, own])  # (2b,)
    exclude = F.one_hot(self_column, 2 * big_b).bool() | F.one_hot(positive_column, 2 * big_b).bool()
    if labels is not None:
        anchor_labels = labels[own].repeat(2)  # (2b,)
        exclude = exclude | (anchor_labels[:, None] == labels.repeat(2)[None, :])
    return NegativePool(candidates, exclude)
