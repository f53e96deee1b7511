"""Losses of continual self-supervised learning: MoCo-v2+ (the base), PNR (Cha et al. 2024, formerly Sy-CON)
and CaSSLe's distillers (Fini et al. 2022), as the authors' code computes them (csm9493/PNR
``cassle/losses/pnr.py``, DonkeyShot21/cassle ``cassle/losses/*.py``; ../shared/papers/method-notes.md
sections 6-7 and 11).

Notation: z = current online projections, k = momentum keys, p = predictor outputs g(z), zb = the frozen
previous-task model's projections; all (B, D).

Inputs, as the authors' functions take them (docs/losses.md lists every public loss):
- the queue losses (``mocov2plus_loss``, ``pnr_moco_loss``) expect unit rows, as CaSSLe's ``moco_loss_func`` and
  PNR's ``moco_pnr_loss_func`` (the MoCo method normalises before calling them);
- the in-batch regularisers (``pnr_simclr_loss``, ``contrastive_distill_loss``) L2-normalise every input
  themselves, as ``simclr_moco_loss_func`` and ``simclr_distill_loss_func`` do, so raw projector outputs are fine;
- the BYOL-form terms (``pnr_byol_regularizer``, ``predictive_distill_loss``) use cosines: any scale.
Queues are (2, K, D): ``queues[v]`` holds past rows of view v + 1, one per row.

    CE(a, b, NEG, t) = mean_i -log( e^{a_i.b_i / t} / (e^{a_i.b_i / t} + sum_n e^{a_i.n / t}) )
    MoCo-v2+   (CE(q1, k2, Q[1], t) + CE(q2, k1, Q[0], t)) / 2
    PNR-MoCo   1/2 sum over (a, b) in ((1, 2), (2, 1)) of
               CE(z_a, k_b, [Qcur[b-1]; Qold[b-1]], t) + CE(p_a, zb_a, [Qcur[b-1]; Qold[b-1]], t_d)
    PNR-SimCLR on the stacked 2B rows, with column i masked in both blocks (see ``pnr_simclr_loss``)
    PNR-BYOL   lambda (D(p1, zb1) + D(p2, zb2)) / 2 - lambda_neg (D(p1, zb2) + D(p2, zb1)) / 2,  D = 2 - 2 cos
    CaSSLe     contrastive: 1/2 [CE over 2B rows (P -> Zb) + CE (Zb -> P)], all 2B rows in each denominator
               predictive:  (D(p1, zb1) + D(p2, zb2)) / 2
The frozen model's outputs zb are detached everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _ce_with_negatives(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                       temperature: float, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
    """mean_i -log softmax([a_i.b_i, a_i.n_1, ..., a_i.n_M, extra_i] / t)[0]; anchor, positive (B, D), negatives
    (M, D), extra_logits (B, S) un-tempered dot products of further negatives (SynCo's synthetic ones)."""
    dtype = torch.promote_types(anchor.dtype, torch.float32)
    anchor, positive, negatives = anchor.to(dtype), positive.to(dtype), negatives.to(dtype)
    parts = [(anchor * positive).sum(dim=1, keepdim=True), anchor @ negatives.T]
    if extra_logits is not None:
        parts.append(extra_logits.to(dtype))
    logits = torch.cat(parts, dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))


def _check_queues(queues: torch.Tensor, dim: int, name: str) -> None:
    if queues.dim() != 3 or queues.shape[0] != 2 or queues.shape[2] != dim:
        raise ValueError(f"{name} must be (2, K, D) with D = {dim}, got {tuple(queues.shape)}")


def mocov2plus_loss(q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, queues: torch.Tensor,
                    temperature: float = 0.2) -> torch.Tensor:
    """Symmetric MoCo-v2+ (CaSSLe's ``mocov2plus``): (CE(q1, k2, queues[1]) + CE(q2, k1, queues[0])) / 2."""
    _check_queues(queues, q1.shape[1], "queues")
    with torch.autocast(q1.device.type, enabled=False):
        return (_ce_with_negatives(q1, k2.detach(), queues[1].detach(), temperature)
                + _ce_with_negatives(q2, k1.detach(), queues[0].detach(), temperature)) / 2


PSEUDO_NEGATIVES = ("both", "plasticity", "stability")


def pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, current_queues, previous_queues,
                  temperature: float = 0.2, distill_temperature: float = 0.2,
                  pseudo_negatives: str = "both", synthetic_logits: tuple | None = None) -> torch.Tensor:
    """PNR for MoCo (``moco_pnr_loss_func``): plasticity and stability terms, both against the pseudo-negatives
    of both queues (their state before this batch's enqueue), weights 1 (``loss_alpha`` and ``distill_lamb``
    are parsed but unused in the authors' loss).

    ``pseudo_negatives`` ablates the symmetry the paper argues for: ``"plasticity"`` or ``"stability"`` keeps
    the previous model's queue in that term only (the other term contrasts against the current queue alone).
    ``synthetic_logits=(s1, s2)``, (B, S) un-tempered logits of z1 and z2 against synthetic negatives (SynCo's,
    made from the current queue), adds them to the plasticity terms' negatives: an option no published code has.
    """
    _check_queues(current_queues, z1.shape[1], "current_queues")
    _check_queues(previous_queues, z1.shape[1], "previous_queues")
    if pseudo_negatives not in PSEUDO_NEGATIVES:
        raise ValueError(f"pseudo_negatives must be one of {PSEUDO_NEGATIVES}, got {pseudo_negatives!r}")
    zb1, zb2 = zb1.detach(), zb2.detach()
    with torch.autocast(z1.device.type, enabled=False):
        total = 0.0
        extras = synthetic_logits if synthetic_logits is not None else (None, None)
        for z, k_other, p, zb, v, extra in ((z1, k2, p1, zb1, 1, extras[0]), (z2, k1, p2, zb2, 0, extras[1])):
            both = torch.cat([current_queues[v], previous_queues[v]]).detach()  # (2K, D)
            current = current_queues[v].detach()
            plastic = both if pseudo_negatives in ("both", "plasticity") else current
            stable = both if pseudo_negatives in ("both", "stability") else current
            total = total + _ce_with_negatives(z, k_other.detach(), plastic, temperature, extra)
            total = total + _ce_with_negatives(p, zb, stable, distill_temperature)
        return total / 2


def pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, temperature: float = 0.2,
                    decoupled_stability: bool = True) -> torch.Tensor:
    """PNR for SimCLR (``simclr_moco_loss_func``), on the stacked rows z = [z1; z2], zb, p (2B, D), one
    temperature (the authors pass ``distill_temperature`` for both terms). Every input is L2-normalised here,
    as the authors' function does, so raw projector and predictor outputs give the authors' value:

        plasticity  l_i = -log e^{z_i.z_i+ / t} / sum_{j != i} (e^{z_i.z_j / t} + e^{z_i.zb_j / t})
        stability   l_i = -log e^{p_i.zb_i / t} / sum_{j != i} (e^{p_i.zb_j / t} + e^{p_i.z_j / t})
        L = mean_i plasticity + mean_i stability

    Column i is masked in both blocks of both terms, as the code reuses one diagonal mask: zb of the other
    view is a pseudo-negative of the plasticity term, and the stability positive p_i.zb_i is not in its
    own denominator (a decoupled, DCL-like form, unlike the MoCo version). ``decoupled_stability=False``
    puts it back (the InfoNCE reading).
    """
    z, zb, p = torch.cat([z1, z2]), torch.cat([zb1, zb2]).detach(), torch.cat([p1, p2])
    with torch.autocast(z.device.type, enabled=False):
        dtype = torch.promote_types(z.dtype, torch.float32)
        z, zb, p = (F.normalize(x.to(dtype), dim=1) for x in (z, zb, p))
        n = len(z)
        rows = torch.arange(n, device=z.device)
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        lowest = float("-inf")
        plastic = torch.cat([(z @ z.T).masked_fill(self_mask, lowest), (z @ zb.T).masked_fill(self_mask, lowest)],
                            dim=1) / temperature  # (2B, 4B)
        other_view = (rows + n // 2) % n
        plasticity = (plastic.logsumexp(dim=1) - plastic[rows, other_view]).mean()
        positive = (p * zb).sum(dim=1) / temperature  # (2B,)
        stable = torch.cat([(p @ zb.T).masked_fill(self_mask, lowest), (p @ z.T).masked_fill(self_mask, lowest)],
                           dim=1) / temperature  # (2B, 4B)
        log_denominator = stable.logsumexp(dim=1)
        if not decoupled_stability:
            log_denominator = torch.logaddexp(log_denominator, positive)
        return plasticity + (log_denominator - positive).mean()


def _d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """BYOL's 2 - 2 cos(a, b), mean over the batch."""
    return 2 - 2 * F.cosine_similarity(a, b, dim=-1).mean()


def pnr_byol_regularizer(p1, p2, zb1, zb2, distill_weight: float = 1.0, negative_weight: float = 0.5) -> torch.Tensor:
    """PNR's regulariser for BYOL: pull g(z) to the frozen output of the same view, push it from the other's."""
    zb1, zb2 = zb1.detach(), zb2.detach()
    pull = (_d(p1, zb1) + _d(p2, zb2)) / 2
    push = (_d(p1, zb2) + _d(p2, zb1)) / 2
    return distill_weight * pull - negative_weight * push


def contrastive_distill_loss(p1, p2, zb1, zb2, temperature: float = 0.2) -> torch.Tensor:
    """CaSSLe's contrastive distiller (``simclr_distill_loss_func``), P = normalize([p1; p2]),
    Zb = normalize([zb1; zb2]): 1/2 [CE(P -> Zb) + CE(Zb -> P)], every one of the 2B rows in the denominator
    (none masked, as the code despite its comment)."""
    with torch.autocast(p1.device.type, enabled=False):
        dtype = torch.promote_types(p1.dtype, torch.float32)
        p = F.normalize(torch.cat([p1, p2]).to(dtype), dim=1)
        zb = F.normalize(torch.cat([zb1, zb2]).detach().to(dtype), dim=1)
        logits = p @ zb.T / temperature  # (2B, 2B)
        target = torch.arange(len(p), device=p.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def predictive_distill_loss(p1, p2, zb1, zb2) -> torch.Tensor:
    """CaSSLe's predictive distiller (BYOL family): (D(p1, zb1) + D(p2, zb2)) / 2, D = 2 - 2 cos."""
    return (_d(p1, zb1.detach()) + _d(p2, zb2.detach())) / 2
