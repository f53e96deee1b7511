"""The continual regularisers by name (``continual.regularizer``), each with a form per base family.

A base method declares its family at registration (``MethodSpec.continual_family``); a family declares
what its step output must hold (:data:`FAMILY_NEEDS`); a regulariser registers one *form* per family it
supports. :class:`synco.continual.regularized.Regularized` looks the regulariser up here, checks the
base's output against the family's needs at the first step, and calls the form. Adding a regulariser is
one ``REGULARIZERS.register`` in a module listed by ``synco.registry.REGULARIZERS``.

Every form gets the regularised module (its weights and settings), the base's step output, the
predictor outputs ``g1, g2 = g(o1), g(o2)`` of the online outputs ``o`` (the family's ``online`` fields)
and the frozen previous model's outputs ``zb1, zb2`` (b, D), and returns the step's loss and the
distillation term (None when the regulariser has no separate one to log):

    MoCo-v2+ (moco)
      cassle   mocov2plus_loss + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d),  p = normalize(g)
      pnr      pnr_moco_loss(q1, q2, k1, k2, p1, p2, zb1, zb2, current queues, old queues, t, t_d)
    SimCLR (simclr)
      cassle   NT-Xent + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d)
      pnr      pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, t_d)
    BYOL (byol)
      cassle   BYOL + lambda predictive_distill_loss(g1, g2, zb1, zb2)
      pnr      BYOL + pnr_byol_regularizer(g1, g2, zb1, zb2, lambda, lambda_neg)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from synco.functional import (
    contrastive_distill_loss,
    pnr_byol_regularizer,
    pnr_moco_loss,
    pnr_simclr_loss,
    predictive_distill_loss,
)
from synco.methods.outputs import EmbeddingOutput, QueueOutput, StepOutput
from synco.registry import REGULARIZERS


@dataclass(frozen=True)
class FamilyNeeds:
    """What a family's regulariser forms read from the base's step output.

    Attributes:
        output: the record type the base's step returns.
        fields: the fields that must be set (not None).
        online: the two fields holding the online outputs of view 1 and view 2 (the predictor's inputs).
    """

    output: type[StepOutput]
    fields: tuple[str, ...]
    online: tuple[str, str]


FAMILY_NEEDS: dict[str, FamilyNeeds] = {
    # MoCo-v2+: both views' queries and keys (and its two queues)
    "moco": FamilyNeeds(QueueOutput, ("query", "query_view_2", "key", "key_view_2"), ("query", "query_view_2")),
    # in-batch two-view contrastive: this process's embeddings of both views
    "simclr": FamilyNeeds(EmbeddingOutput, ("z1", "z2"), ("z1", "z2")),
    # online projections and predictions
    "byol": FamilyNeeds(EmbeddingOutput, ("z1", "z2", "p1", "p2"), ("z1", "z2")),
}

#: ``form(module, out, g1, g2, zb1, zb2) -> (loss, distill or None)``
Form = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class Regularizer:
    """A continual regulariser.

    Attributes:
        forms: family -> its form of the loss.
        old_queues: families for which it keeps queues of the frozen model's outputs (PNR's pseudo-negatives
            of the MoCo form).
    """

    forms: dict[str, Form]
    old_queues: frozenset[str] = frozenset()


def _unit(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.normalize(g1, dim=1), F.normalize(g2, dim=1)


def _cassle_contrastive(module, out, g1, g2, zb1, zb2):
    """Base loss + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d) (the MoCo and SimCLR families)."""
    p1, p2 = _unit(g1, g2)
    distill = contrastive_distill_loss(p1, p2, zb1, zb2, module.distill_temperature)
    return out.loss + module.distill_weight * distill, distill


def _cassle_byol(module, out, g1, g2, zb1, zb2):
    """BYOL + lambda predictive_distill_loss(g1, g2, zb1, zb2) (BYOL's cosines normalise themselves)."""
    distill = predictive_distill_loss(g1, g2, zb1, zb2)
    return out.loss + module.distill_weight * distill, distill


def _pnr_moco(module, out, g1, g2, zb1, zb2):
    """pnr_moco_loss over the current and old queues; it replaces the base's InfoNCE (the authors' --pnr_loss).
    With a SynCo base after its warm-up, the synthetic negatives join the plasticity terms."""
    p1, p2 = _unit(g1, g2)
    base = module.base
    current = torch.stack([base.queue.keys, base.second_queue.keys]).detach()
    old = torch.stack([module.old_queue.keys, module.old_second_queue.keys]).detach()
    synthetic = None
    if out.synthetic_logits is not None and out.synthetic_logits.shape[1]:
        synthetic = (out.synthetic_logits, out.synthetic_logits_view_2)
    loss = pnr_moco_loss(out.query, out.query_view_2, out.key, out.key_view_2, p1, p2, zb1, zb2, current, old,
                         base.temperature, module.distill_temperature, module.pseudo_negatives, synthetic)
    return loss, None


def _pnr_simclr(module, out, g1, g2, zb1, zb2):
    """pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, t_d): replaces NT-Xent (its plasticity term is NT-Xent)."""
    p1, p2 = _unit(g1, g2)
    return pnr_simclr_loss(p1, p2, out.z1, out.z2, zb1, zb2, module.distill_temperature), None


def _pnr_byol(module, out, g1, g2, zb1, zb2):
    """BYOL + pnr_byol_regularizer(g1, g2, zb1, zb2, lambda, lambda_neg)."""
    regularizer = pnr_byol_regularizer(g1, g2, zb1, zb2, module.distill_weight, module.negative_weight)
    return out.loss + regularizer, None


REGULARIZERS.register("cassle", Regularizer({"moco": _cassle_contrastive, "simclr": _cassle_contrastive,
                                             "byol": _cassle_byol}))
REGULARIZERS.register("pnr", Regularizer({"moco": _pnr_moco, "simclr": _pnr_simclr, "byol": _pnr_byol},
                                         old_queues=frozenset({"moco"})))
