"""CaSSLe and PNR as regularisers of a base method from the second task on.

From task t >= 1 the method holds, besides the base (online and momentum encoders, one queue per view):

    frozen      the previous task's online encoder (backbone + projector), no gradient; batch norm in eval mode
                (PNR; ``continual.frozen_batchnorm=train`` keeps CaSSLe's batch statistics)
    predictor   g: Linear(D, H) - BatchNorm1d - ReLU - Linear(H, D), H = ``continual.predictor_hidden`` (2048)
    old queues  (PNR) a queue per view of the frozen model's outputs, restored from the previous task's
                checkpoint when it had them (as the authors' code), random otherwise

and the loss of a batch, with z = the online projections (MoCo: the queries), k = momentum keys,
p = g(z) (normalised for the contrastive families), zb = the frozen model's outputs of the same views:

    MoCo-v2+ (method.symmetric=true)
      cassle   mocov2plus_loss + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d)
      pnr      pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, current queues, old queues, t, t_d)
               (the base's own InfoNCE is replaced, as with the authors' ``--pnr_loss``)
    SimCLR
      cassle   NT-Xent + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d)
      pnr      pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, t_d) (replaces NT-Xent: its plasticity term is it)
    BYOL
      cassle   BYOL + lambda predictive_distill_loss(p1, p2, zb1, zb2)
      pnr      BYOL + pnr_byol_regularizer(p1, p2, zb1, zb2, lambda, lambda_neg)

With a SynCo base (``method.name=synco``, symmetric) PNR's plasticity terms also contrast against SynCo's
synthetic negatives (made from the current queue) after the warm-up: an option no published code has.
``continual.pseudo_negatives=plasticity|stability`` keeps PNR's pseudo-negatives in one term only (the
symmetry ablation). Each epoch logs the effective rank of the queues' keys (current and, for PNR, old
outputs): how diverse the negatives are. A method's family is declared at its registration
(``MethodSpec.continual_family``); methods without one are refused by the configuration. The regularisers'
forms, and what each family's form reads from the base's step output, are in
:mod:`synco.continual.regularizers` (the registry ``synco.registry.REGULARIZERS``); this module holds the
parts they share (the frozen copy, the predictor, the old queues) and the step that calls them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from synco import distributed
from synco.continual.regularizers import FAMILY_NEEDS
from synco.data.batch import Batch
from synco.functional.representation import effective_rank
from synco.memory import NegativeQueue
from synco.methods.base import Method, StepContext
from synco.methods.outputs import RegularizedOutput, missing_fields
from synco.registry import REGULARIZERS


def predictor(dim: int, hidden: int) -> nn.Module:
    """CaSSLe's distillation predictor: Linear(D, H) - BatchNorm1d - ReLU - Linear(H, D)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


class Regularized(Method):
    """A base regularised towards the previous task's frozen encoder (CaSSLe or PNR).

    Args:
        family: the base's family (``MethodSpec.continual_family``, declared at registration; a key of
            :data:`FAMILY_NEEDS`): which form of the regulariser applies. Never inferred from the class.
        negative_weight: PNR-BYOL's lambda_neg (0.5 on CIFAR in the authors' scripts).
    """

    def __init__(self, base: Method, family: str | None, kind: str, hidden: int = 2048, distill_weight: float = 1.0,
                 distill_temperature: float = 0.2, frozen_batchnorm: str = "eval", seed: int = 0,
                 pseudo_negatives: str = "both", negative_weight: float = 0.5) -> None:
        super().__init__()
        if family == "moco" and getattr(base, "second_queue", None) is None:
            raise ValueError("the MoCo family's regularisers need the MoCo-v2+ base (method.symmetric=true)")
        self.family = family
        if family not in FAMILY_NEEDS:
            raise ValueError("continual regularisers are built for MoCo-v2+ (method.symmetric=true), SimCLR-like "
                             f"two-view methods and BYOL, not {type(base).__name__}")
        if kind not in REGULARIZERS:
            raise ValueError(f"continual.regularizer must be one of {REGULARIZERS.names()}, got {kind!r}")
        self.regularizer = REGULARIZERS.get(kind)
        if family not in self.regularizer.forms:
            raise ValueError(f"continual.regularizer={kind} has no form for the {family} family")
        self.base, self.kind = base, kind
        self.frozen = copy.deepcopy(base.online_encoder)
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        dim = base.online_encoder.head(torch.zeros(2, base.online_encoder.backbone.feature_dim)).shape[1]
        torch.manual_seed(seed + 3)
        self.predictor = predictor(dim, hidden)
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        self.frozen_batchnorm = frozen_batchnorm
        self.pseudo_negatives = pseudo_negatives
        self.negative_weight = negative_weight
        self.old_queue = self.old_second_queue = None
        if self.family in self.regularizer.old_queues:
            size = base.queue.size
            self.old_queue = NegativeQueue(size, dim, generator=torch.Generator().manual_seed(seed + 4))
            self.old_second_queue = NegativeQueue(size, dim, generator=torch.Generator().manual_seed(seed + 5))
        self.needs_labels = base.needs_labels
        self.train(self.training)  # the frozen copy's mode follows continual.frozen_batchnorm from the start

    @property
    def online_encoder(self) -> nn.Module:
        return self.base.online_encoder

    @property
    def temperature(self) -> float:
        return getattr(self.base, "temperature", self.distill_temperature)

    def trainable_parameters(self):
        return [*self.base.trainable_parameters(), *self.predictor.parameters()]

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.train(mode and self.frozen_batchnorm == "train")  # PNR: the previous model in eval mode
        return self

    def load_initial_state(self, state: dict[str, torch.Tensor]) -> None:
        """The previous task's checkpoint: a plain MoCo (task 0) or a regularised one (``base.*`` keys). The base
        and the frozen copy both start from its base; the predictor starts fresh; PNR's old queues are restored
        when the previous task had them."""
        base_state = {k[len("base."):]: v for k, v in state.items() if k.startswith("base.")} or state
        self.base.load_initial_state(base_state)
        self.frozen.load_state_dict(self.base.online_encoder.state_dict())
        if self.old_queue is not None and "old_queue.keys" in state:
            self.old_queue.load_state_dict({k[len("old_queue."):]: v for k, v in state.items()
                                            if k.startswith("old_queue.")})
            self.old_second_queue.load_state_dict({k[len("old_second_queue."):]: v for k, v in state.items()
                                                   if k.startswith("old_second_queue.")})

    def training_step(self, batch: Batch, context: StepContext) -> RegularizedOutput:
        out = self.base.training_step(batch, context)
        needs = FAMILY_NEEDS[self.family]
        missing = missing_fields(out, needs.output, needs.fields)
        if missing:
            raise KeyError(f"the {self.family} family's regularisers read {missing} from the base's step outputs, "
                           f"which {type(self.base).__name__} does not return")
        view_1, view_2 = batch.views
        with torch.no_grad():
            zb1, zb2 = self.frozen(view_1), self.frozen(view_2)  # (b, D) the previous task's outputs
        g1, g2 = (self.predictor(getattr(out, name)) for name in needs.online)
        loss, distill = self.regularizer.forms[self.family](self, out, g1, g2, zb1, zb2)
        return RegularizedOutput(loss=loss, base=out, frozen_1=zb1, frozen_2=zb2, distill=distill)

    def epoch_log(self, epoch: int) -> dict:
        """The base's entries, and the diversity of the negatives in the queues: the effective rank (exp of the
        entropy of the normalised singular values) of the current queues' keys and of PNR's old-output queues."""
        out = dict(self.base.epoch_log(epoch))
        if self.family != "moco":
            return out
        keys = torch.cat([self.base.queue.keys, self.base.second_queue.keys]).float().cpu()
        out["continual/queue_effective_rank"] = effective_rank(keys)
        if self.old_queue is not None:
            old = torch.cat([self.old_queue.keys, self.old_second_queue.keys]).float().cpu()
            out["continual/old_queue_effective_rank"] = effective_rank(old)
        return out

    def after_step(self, out: RegularizedOutput, batch: Batch) -> None:
        self.base.after_step(out.base, batch)
        if self.old_queue is not None:  # the frozen outputs become the next batches' pseudo-negatives
            index = distributed.all_gather_cat(batch.index)
            self.old_queue.enqueue(distributed.all_gather_cat(out.frozen_1), index)
            self.old_second_queue.enqueue(distributed.all_gather_cat(out.frozen_2), index)
