"""CaSSLe and PNR as regularisers of a MoCo-v2+ base from the second task on (issue 13, in progress).

From task t >= 1 the method holds, besides the base (online and momentum encoders, one queue per view):

    frozen      the previous task's online encoder (backbone + projector), no gradient; batch norm in eval mode
                (PNR; ``continual.frozen_batchnorm=train`` keeps CaSSLe's batch statistics)
    predictor   g: Linear(D, H) - BatchNorm1d - ReLU - Linear(H, D), H = ``continual.predictor_hidden`` (2048)
    old queues  (PNR) a queue per view of the frozen model's outputs, restored from the previous task's
                checkpoint when it had them (as the authors' code), random otherwise

and the loss of a batch, with z = the online queries q1, q2, k = momentum keys, p = normalize(g(z)),
zb = the frozen model's outputs of the same views:

    cassle   mocov2plus_loss(...) + lambda contrastive_distill_loss(p1, p2, zb1, zb2, t_d)
    pnr      pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, current queues, old queues, t, t_d)
             (the base's own InfoNCE is replaced, as with the authors' ``--pnr_loss``)

``continual.pseudo_negatives=plasticity|stability`` keeps PNR's pseudo-negatives in one term only (the
symmetry ablation). Each epoch logs the effective rank of the queues' keys (current and, for PNR, old
outputs): how diverse the negatives are. Only the MoCo-v2+ base (``method.symmetric=true``) is wired so far;
other bases are refused by the configuration.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from synco import distributed
from synco.data.batch import Batch
from synco.functional import contrastive_distill_loss, pnr_moco_loss
from synco.memory import NegativeQueue
from synco.methods.base import Method, StepContext
from synco.methods.moco import MoCo


def predictor(dim: int, hidden: int) -> nn.Module:
    """CaSSLe's distillation predictor: Linear(D, H) - BatchNorm1d - ReLU - Linear(H, D)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


class Regularized(Method):
    """A MoCo-v2+ base regularised towards the previous task's frozen encoder (CaSSLe or PNR)."""

    def __init__(self, base: MoCo, kind: str, hidden: int = 2048, distill_weight: float = 1.0,
                 distill_temperature: float = 0.2, frozen_batchnorm: str = "eval", seed: int = 0,
                 pseudo_negatives: str = "both") -> None:
        super().__init__()
        if base.second_queue is None:
            raise ValueError("continual regularisers need the MoCo-v2+ base (method.symmetric=true)")
        if kind not in ("cassle", "pnr"):
            raise ValueError(f"continual.regularizer must be cassle or pnr here, got {kind!r}")
        self.base, self.kind = base, kind
        self.frozen = copy.deepcopy(base.encoder_q)
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        dim = base.queue.keys.shape[1]
        torch.manual_seed(seed + 3)
        self.predictor = predictor(dim, hidden)
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        self.frozen_batchnorm = frozen_batchnorm
        self.pseudo_negatives = pseudo_negatives
        self.old_queue = self.old_second_queue = None
        if kind == "pnr":
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
        return self.base.temperature

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
        self.frozen.load_state_dict(self.base.encoder_q.state_dict())
        if self.kind == "pnr" and "old_queue.keys" in state:
            self.old_queue.load_state_dict({k[len("old_queue."):]: v for k, v in state.items()
                                            if k.startswith("old_queue.")})
            self.old_second_queue.load_state_dict({k[len("old_second_queue."):]: v for k, v in state.items()
                                                   if k.startswith("old_second_queue.")})

    def training_step(self, batch: Batch, context: StepContext) -> dict[str, torch.Tensor]:
        out = self.base.training_step(batch, context)
        view_1, view_2 = batch.views
        with torch.no_grad():
            zb1, zb2 = self.frozen(view_1), self.frozen(view_2)  # (b, D) the previous task's outputs
        q1, q2 = out["query"], out["query_view_2"]
        p1, p2 = F.normalize(self.predictor(q1), dim=1), F.normalize(self.predictor(q2), dim=1)
        if self.kind == "cassle":
            out["distill"] = contrastive_distill_loss(p1, p2, zb1, zb2, self.distill_temperature)
            out["loss"] = out["loss"] + self.distill_weight * out["distill"]
        else:
            current = torch.stack([self.base.queue.keys, self.base.second_queue.keys]).detach()
            old = torch.stack([self.old_queue.keys, self.old_second_queue.keys]).detach()
            out["loss"] = pnr_moco_loss(q1, q2, out["key"], out["key_view_2"], p1, p2, zb1, zb2, current, old,
                                        self.base.temperature, self.distill_temperature, self.pseudo_negatives)
        out["frozen_1"], out["frozen_2"] = zb1, zb2
        return out

    def epoch_log(self, epoch: int) -> dict:
        """The base's entries, and the diversity of the negatives in the queues: the effective rank (exp of the
        entropy of the normalised singular values) of the current queues' keys and of PNR's old-output queues."""
        from synco.analysis.representation import effective_rank

        out = dict(self.base.epoch_log(epoch))
        keys = torch.cat([self.base.queue.keys, self.base.second_queue.keys]).float().cpu()
        out["continual/queue_effective_rank"] = effective_rank(keys)
        if self.kind == "pnr":
            old = torch.cat([self.old_queue.keys, self.old_second_queue.keys]).float().cpu()
            out["continual/old_queue_effective_rank"] = effective_rank(old)
        return out

    def after_step(self, out: dict[str, torch.Tensor], batch: Batch) -> None:
        self.base.after_step(out, batch)
        if self.kind == "pnr":  # the frozen outputs become the next batches' pseudo-negatives
            index = distributed.all_gather_cat(batch.index)
            self.old_queue.enqueue(distributed.all_gather_cat(out["frozen_1"]), index)
            self.old_second_queue.enqueue(distributed.all_gather_cat(out["frozen_2"]), index)
