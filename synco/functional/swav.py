"""SwAV (Caron et al., 2020): online equipartitioned codes by Sinkhorn-Knopp, and the swapped prediction.

Sinkhorn-Knopp, as the authors' ``distributed_sinkhorn`` (``main_swav.py``) on the global batch:

    Q = exp(scores / epsilon)^T                (P, B);  Q /= sum(Q)
    repeat: Q /= row sums; Q /= P;  Q /= column sums; Q /= B
    codes = (Q * B)^T                          (B, P), each row sums to 1

Swapped prediction over V crops, codes computed for the crops of ``crops_for_assign`` only:

    L = 1/|A| sum_{a in A} 1/(V - 1) sum_{v != a} -mean_b sum_p q_a[b, p] log softmax(scores_v[b] / temperature)_p
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Equipartitioned soft assignments of B samples to P prototypes.

    Args:
        scores: (B, P) prototype scores (cosines of unit embeddings and unit prototypes), the global batch
            (plus any queued rows); no gradient flows through.
        epsilon: entropic regularisation; smaller gives harder codes.
        iterations: alternating normalisations (the authors' 3).

    Returns:
        (B, P) codes, rows summing to 1, columns summing to B / P after the last row normalisation.
    """
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()  # exp(s / 0.05) leaves half precision's range
    q = torch.exp(scores / epsilon).t()  # (P, B)
    prototypes, batch = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / prototypes
        q = q / q.sum(dim=0, keepdim=True) / batch
    return (q * batch).t()


def swav_loss(scores: torch.Tensor, crops_for_assign: Sequence[int] = (0, 1), temperature: float = 0.1,
              epsilon: float = 0.05, sinkhorn_iterations: int = 3,
              queue_scores: Sequence[torch.Tensor] | torch.Tensor | None = None) -> torch.Tensor:
    """SwAV's swapped-prediction loss.

    Args:
        scores: (V, B, P) prototype scores of V crops of the same B images, global crops first.
        crops_for_assign: the crops whose codes are predicted from every other crop (the authors' 0 and 1).
        temperature: of the softmax over prototypes (0.1).
        epsilon, sinkhorn_iterations: of :func:`sinkhorn_knopp`.
        queue_scores: per assigned crop (in the order of ``crops_for_assign``), (Q, P) scores of queued
            embeddings, prepended before Sinkhorn-Knopp to give it more samples; None without a queue.

    Returns:
        The scalar loss.
    """
    views, batch = scores.shape[0], scores.shape[1]
    if views < 2:
        raise ValueError(f"swav_loss needs at least 2 crops, got {views}")
    if not crops_for_assign or any(not 0 <= c < views for c in crops_for_assign):
        raise ValueError(f"crops_for_assign={tuple(crops_for_assign)} must name crops among the {views} given")
    log_probs = F.log_softmax(scores / temperature, dim=2)  # (V, B, P)
    loss = scores.new_zeros(())
    for i, crop in enumerate(crops_for_assign):
        assigned = scores[crop].detach()
        if queue_scores is not None:
            assigned = torch.cat([queue_scores[i].detach(), assigned])
        codes = sinkhorn_knopp(assigned, epsilon, sinkhorn_iterations)[-batch:]  # (B, P)
        others = [v for v in range(views) if v != crop]
        subloss = sum(-(codes * log_probs[v]).sum(dim=1).mean() for v in others)
        loss = loss + subloss / (views - 1)
    return loss / len(crops_for_assign)
