"""H-SCL, supervised contrastive learning with hard negatives (Jiang et al., 2022), as the authors'
``nce_supervised_hard`` (rjiang03/H-SCL ``main/main.py``) computes it.

For 2B unit embeddings z = [z1; z2] with labels y = [labels; labels] and s_ij = z_i.z_j / t:

    P(i) = {p != i : y_p = y_i}     every same-class row of both views (not only the other view)
    N(i) = {j : y_j != y_i}         label-conditioned negatives
    H-SCL(beta):  Nbar_i = sum_{j in N(i)} w_ij e^{s_ij} / sum_{j in N(i)} w_ij,   w_ij = exp(beta s_ij)
    H-SCL(tau):   Nbar_i = mean of e^{s_ij} over {j in N(i) : e^{s_ij} >= tau}
    l_ip = -log( e^{s_ip} / (e^{s_ip} + M Nbar_i) ),   M = 2B - 2
    L = mean of l_ip over all pairs (i, p in P(i))   (a pair mean: anchors with many positives weigh more)

beta = 0 is the authors' SCL baseline (``nce_supervised_easy``: the plain mean over other-class rows), which
is not Khosla's SupCon. The authors hard-code t = 0.5 (``exp(2 z.z)``): the default here. Their code detaches
the weights when beta < 1 (and would at any beta with ``gradient_imp=False``, which their command line cannot
set); here ``detach_weights`` decides at every beta, False by default as at their default beta = 1.

Choices not in the public code (documented in docs/losses.md): H-SCL(tau) is not there at all; an anchor
whose hard set is empty falls back to the plain SCL mean over N(i); an anchor without any other-class row in
the batch has Nbar_i = 0, so its pairs add 0 (the authors' code gives NaN).
"""

from __future__ import annotations

import math

import torch

from synco.functional.hcl import tilted_log_sum


def hscl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.5,
    beta: float = 1.0,
    threshold: float | None = None,
    detach_weights: bool = False,
    synthetic_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """H-SCL(beta), or H-SCL(tau) with ``threshold=tau``, of a batch.

    Args:
        z1, z2: (B, D) unit rows, the two views of B images (B >= 2).
        labels: (B,) int64 classes.
        temperature: t.
        beta: tilt, >= 0 (ignored with ``threshold``).
        threshold: tau > 0: the uniform mean over other-class rows with e^{s} >= tau.
        detach_weights: stop the gradient through w_ij.
        synthetic_logits: optional (2B, S) un-tempered logits z_i.s of each anchor's synthetic negatives (anchors
            ordered [z1; z2]; detached vectors made from other-class rows). They join the denominator only, beside
            the reweighted negatives: l_ip = -log( e^{s_ip} / (e^{s_ip} + M Nbar_i + sum_s e^{z_i.s / t}) ).

    Returns:
        Scalar.
    """
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must be (B, D) with B >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if labels.shape != (z1.shape[0],):
        raise ValueError(f"labels must be (B,) = ({z1.shape[0]},), got {tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    if threshold is not None and threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    with torch.autocast(z1.device.type, enabled=False):
        logits, positive, negative = supervised_pair_logits(z1, z2, labels, temperature)
        log_nbar = hard_negative_log_mean(logits, negative, beta, threshold, detach_weights)  # (2B,)
        log_negative_term = log_nbar + math.log(2 * z1.shape[0] - 2)  # (2B,) log(M Nbar_i)
        if synthetic_logits is not None:
            if synthetic_logits.dim() != 2 or synthetic_logits.shape[0] != logits.shape[0]:
                raise ValueError(f"synthetic_logits must be (2B, S) = ({logits.shape[0]}, S), got "
                                 f"{tuple(synthetic_logits.shape)}")
            synthetic = (synthetic_logits.to(logits.dtype) / temperature).logsumexp(dim=1)  # (2B,)
            log_negative_term = torch.logaddexp(log_negative_term, synthetic)
        return supervised_pair_loss(logits, positive, log_negative_term)


def supervised_pair_logits(z1, z2, labels, temperature) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s (2B, 2B) in float32 at least, P mask (2B, 2B): same class but not self, N mask: other class)."""
    dtype = torch.promote_types(z1.dtype, torch.float32)
    z = torch.cat([z1, z2]).to(dtype)  # (2B, D)
    y = torch.cat([labels, labels])  # (2B,)
    same = y.unsqueeze(1) == y.unsqueeze(0)  # (2B, 2B)
    positive = same & ~torch.eye(len(y), dtype=torch.bool, device=z.device)
    return z @ z.T / temperature, positive, ~same


def hard_negative_log_mean(logits, negative, beta, threshold, detach_weights) -> torch.Tensor:
    """log Nbar_i (R,) of logits (R, C) over the negative columns: tilted (beta) or thresholded (tau) mean."""
    if threshold is None:
        weights = beta * (logits.detach() if detach_weights else logits)
        return tilted_log_sum(logits, weights, negative)
    hard = negative & (logits >= math.log(threshold))
    # Empty hard set: the plain mean over all negatives (SCL), a choice of ours; see the module docstring.
    keep = torch.where(hard.any(dim=1, keepdim=True), hard, negative)
    return tilted_log_sum(logits, torch.zeros_like(logits), keep)


def supervised_pair_loss(logits, positive, log_negative_term) -> torch.Tensor:
    """mean over (i, p) with positive[i, p] of -log( e^{s_ip} / (e^{s_ip} + e^{log_negative_term_i}) ).

    A masked mean over the whole (R, C) matrix rather than a gather of the positive pairs: the number of pairs
    depends on the labels, and a tensor of that size would make ``torch.compile`` recompile for every new count.
    """
    pair_loss = torch.logaddexp(logits, log_negative_term.unsqueeze(1)) - logits  # (R, C)
    mask = positive.to(pair_loss.dtype)
    return (pair_loss * mask).sum() / mask.sum()
