"""What a training step returns: typed records, one per method family.

``Method.training_step`` returns one of these; the training loop reads ``loss``; the method's own
``after_step`` reads what it needs for its updates (keys to enqueue, the momentum of this step); the
continual regularisers, the online probe, the analyses of negatives and the benches read the fields their
family declares. Shapes are those of this process's share of the batch (``b`` rows; ``B`` is the global
batch when a method gathers).

Family records:

    StepOutput          every method: ``loss``
    EmbeddingOutput     two-view methods that embed each view (SimCLR, SupCon, HCL, H-SCL, BYOL, SimSiam,
                        Barlow Twins, VICReg): ``z1``, ``z2`` and, with a predictor, ``p1``, ``p2``
    SwavOutput          SwAV: the embeddings of the first two crops, all crops' prototype scores
    QueueOutput         momentum-queue methods (MoCo-v2, MoCHI, SynCo, MoCo-v2+, the label-aware queues):
                        the queries, keys, logits and synthetic negatives of the step

Wrappers (continual learning) return a record of their own that holds the base's as ``base``;
:func:`innermost` unwraps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

Tensor = torch.Tensor


@dataclass
class StepOutput:
    """The step of any method.

    Attributes:
        loss: () the objective of this process's share of the batch, with gradient.
    """

    loss: Tensor


@dataclass
class EmbeddingOutput(StepOutput):
    """A two-view method that embeds each view.

    Attributes:
        z1, z2: (b, D) this process's projections of view 1 and view 2 (unit for the contrastive methods,
            raw for BYOL, SimSiam, Barlow Twins and VICReg), with gradient.
        p1, p2: (b, D) predictor outputs of the two views (BYOL, SimSiam), else None.
        synthetic_logits: (2b, S) detached logits of the synthetic negatives of SimCLR's anchors (S = 0 or
            None when nothing is synthesised).
        momentum: the target encoder's momentum for this step's update (BYOL), else None.
    """

    z1: Tensor
    z2: Tensor
    p1: Tensor | None = None
    p2: Tensor | None = None
    synthetic_logits: Tensor | None = None
    momentum: float | None = None


@dataclass
class SwavOutput(EmbeddingOutput):
    """SwAV: ``z1``/``z2`` are the first two (global) crops' unit embeddings.

    Attributes:
        scores: (V, b, P) every crop's prototype scores, with gradient.
        assigned_embeddings: (A, b, D) detached embeddings of the crops used for assignment, which
            ``after_step`` enqueues once the queue is in use, else None.
    """

    scores: Tensor | None = None
    assigned_embeddings: Tensor | None = None


@dataclass
class QueueOutput(StepOutput):
    """A momentum-queue method (one direction, or both for MoCo-v2+).

    Attributes:
        key: (b, D) unit keys of view 2 from the momentum encoder, detached: enqueued by ``after_step``
            (MoCo-v2+: the keys of view 1, enqueued into the first queue).
        query: (b, D) unit queries of view 1, with gradient.
        positive: (b,) detached q.k.
        queue_logits: (b, K) un-tempered q.queue, same-image entries masked.
        synthetic_logits: (b, S) un-tempered logits of the synthetic negatives (S = 0 during the warm-up).
        sources: where the synthetic negatives came from (``synco.negatives.SyntheticSources``), when the
            analyses asked for them and synthesis ran, else None.
        momentum: the key encoder's momentum for this step's update (None: the method's constant).
        key_view_2, query_view_2, synthetic_logits_view_2: the second direction of MoCo-v2+ (keys of view 2,
            queries of view 2, their synthetic logits), else None.
        queue_image_index: (K,) dataset index of every queue row before this step's enqueue (-1: a random
            initial row), when the analyses asked for it, else None.
    """

    key: Tensor
    query: Tensor | None = None
    positive: Tensor | None = None
    queue_logits: Tensor | None = None
    synthetic_logits: Tensor | None = None
    sources: Any = None
    momentum: float | None = None
    key_view_2: Tensor | None = None
    query_view_2: Tensor | None = None
    synthetic_logits_view_2: Tensor | None = None
    queue_image_index: Tensor | None = None


@dataclass
class RegularizedOutput(StepOutput):
    """A base regularised towards the previous task (CaSSLe, PNR): ``loss`` includes the regulariser.

    Attributes:
        base: the base method's record (its ``loss`` without the regulariser).
        frozen_1, frozen_2: (b, D) the previous task's frozen outputs of the two views, detached.
        distill: () the distillation term (CaSSLe), else None.
    """

    base: StepOutput
    frozen_1: Tensor
    frozen_2: Tensor
    distill: Tensor | None = None


@dataclass
class ProbedOutput(StepOutput):
    """A method trained with an online linear probe beside it: ``loss`` includes the probe's cross-entropy.

    Attributes:
        base: the wrapped method's record.
        probe_loss: () detached cross-entropy of the probe.
        probe_correct: () detached share of the batch the probe classifies correctly.
    """

    base: StepOutput
    probe_loss: Tensor
    probe_correct: Tensor


def innermost(out: StepOutput) -> StepOutput:
    """The record of the method at the bottom of a stack of wrappers (``out`` itself when none)."""
    while hasattr(out, "base"):
        out = out.base
    return out


def missing_fields(out: StepOutput, kind: type[StepOutput], fields: tuple[str, ...]) -> list[str]:
    """The ``fields`` a reader of ``kind`` records needs that ``out`` lacks (not of that kind, or None)."""
    if not isinstance(out, kind):
        return [f"a {kind.__name__} (got a {type(out).__name__})"]
    return [name for name in fields if getattr(out, name) is None]
