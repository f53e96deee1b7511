"""SupCon and H-SCL with a memory of past keys (SupCon's "MoCo trick"): anchors against a contrast set.

The anchors are the B queries q_i (online encoder, one view) with labels y_i; the contrast set is the batch's
momentum keys followed by the K queue rows, c_a with labels l_a (-1 for rows of unknown class: never
positives, always negatives). With s_ia = q_i.c_a / t:

    P(i) = {a : l_a = y_i}            (the query's own key included)       N(i) = {a : l_a != y_i}

    SupCon   L = -(t / t_base) mean_i (1 / |P(i)|) sum_{p in P(i)} [ s_ip - log sum_a e^{s_ia} ]
    H-SCL    L = mean over pairs (i, p) of -log( e^{s_ip} / (e^{s_ip} + M Nbar_i) ),  M = B + K - 1,
             Nbar_i the tilted (beta) or thresholded (tau) mean of e^{s_ia} over N(i), as ``hscl_loss``

The same sums as the in-batch functions, with the 2B - 1 other views replaced by B + K contrast rows; the
queries' own rows are not in the contrast set (a query meets its own image through its key).
"""

from __future__ import annotations

import math

import torch

from synco.functional.hscl import hard_negative_log_mean, supervised_pair_loss


def _check(query, contrast, query_labels, contrast_labels):
    if query.dim() != 2 or contrast.dim() != 2 or query.shape[1] != contrast.shape[1]:
        raise ValueError(f"query (B, D) and contrast (C, D) must share D, got {tuple(query.shape)}, {tuple(contrast.shape)}")
    if query_labels.shape != (query.shape[0],) or contrast_labels.shape != (contrast.shape[0],):
        raise ValueError("query_labels must be (B,) and contrast_labels (C,)")


def supcon_queue_loss(query: torch.Tensor, contrast: torch.Tensor, query_labels: torch.Tensor,
                      contrast_labels: torch.Tensor, temperature: float = 0.07,
                      base_temperature: float = 0.07) -> torch.Tensor:
    """SupCon L_out of B anchors against C contrast rows; anchors without a positive add 0 (counted)."""
    _check(query, contrast, query_labels, contrast_labels)
    with torch.autocast(query.device.type, enabled=False):
        dtype = torch.promote_types(query.dtype, torch.float32)
        logits = query.to(dtype) @ contrast.to(dtype).T / temperature  # (B, C)
        positive = (query_labels.unsqueeze(1) == contrast_labels.unsqueeze(0)).to(dtype)  # (B, C)
        log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
        count = positive.sum(dim=1).clamp(min=1)
        return -(temperature / base_temperature) * ((positive * log_prob).sum(dim=1) / count).mean()


def hscl_queue_loss(query: torch.Tensor, contrast: torch.Tensor, query_labels: torch.Tensor,
                    contrast_labels: torch.Tensor, temperature: float = 0.5, beta: float = 1.0,
                    threshold: float | None = None, detach_weights: bool = False) -> torch.Tensor:
    """H-SCL(beta) or H-SCL(tau) of B anchors against C contrast rows (pair mean)."""
    _check(query, contrast, query_labels, contrast_labels)
    with torch.autocast(query.device.type, enabled=False):
        dtype = torch.promote_types(query.dtype, torch.float32)
        logits = query.to(dtype) @ contrast.to(dtype).T / temperature  # (B, C)
        same = query_labels.unsqueeze(1) == contrast_labels.unsqueeze(0)
        log_nbar = hard_negative_log_mean(logits, ~same, beta, threshold, detach_weights)  # (B,)
        return supervised_pair_loss(logits, same, log_nbar + math.log(contrast.shape[0] - 1))
