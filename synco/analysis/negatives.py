"""Per-step statistics of the negatives, from the logits a training step computes anyway.

All inputs are un-tempered dot products: ``positive`` (B,) = q.k, ``queue_logits`` (B, K) = q.n
(masked entries hold finfo.min), ``synthetic_logits`` (B, S) = q.s laid out by ``strategy`` (S,) ids
1..6. Everything runs without gradients and returns Python floats or small tensors.
"""

from __future__ import annotations

import torch

from synco.negatives.module import STRATEGIES


@torch.no_grad()
def proxy_accuracy(positive: torch.Tensor, queue_logits: torch.Tensor, synthetic_logits: torch.Tensor) -> dict:
    """Share of queries whose key outranks every negative (MoCHI's proxy-task accuracy, SynCo Fig. 3).

    ``proxy_acc`` counts real and synthetic negatives; ``proxy_acc_real`` the queue only.
    """
    best_real = queue_logits.max(dim=1).values  # (B,)
    beats_real = positive > best_real
    beats_all = beats_real
    if synthetic_logits.shape[1]:
        beats_all = beats_real & (positive > synthetic_logits.max(dim=1).values)
    return {"proxy_acc": beats_all.float().mean().item(), "proxy_acc_real": beats_real.float().mean().item()}


@torch.no_grad()
def hardness_profile(
    positive: torch.Tensor, queue_logits: torch.Tensor, temperature: float, top: int = 1024
) -> torch.Tensor:
    """Mean over queries of the ``top`` largest matching probabilities of the queue negatives (SynCo Fig. 2).

    ``p_z = softmax([q.k, q.n_1, ..., q.n_K] / tau)`` restricted to the negatives, sorted decreasingly.
    Returns (min(top, K),).
    """
    dtype = torch.promote_types(queue_logits.dtype, torch.float32)
    logits = torch.cat([positive.unsqueeze(1), queue_logits], dim=1).to(dtype) / temperature  # (B, 1 + K)
    probabilities = logits.softmax(dim=1)[:, 1:]  # (B, K)
    return probabilities.topk(min(top, probabilities.shape[1]), dim=1).values.mean(dim=0)  # (top,)


@torch.no_grad()
def strategy_statistics(
    queue_logits: torch.Tensor, synthetic_logits: torch.Tensor, strategy: torch.Tensor, positive: torch.Tensor,
    temperature: float,
) -> dict:
    """Per strategy: mean over queries of its largest logit, and its share of the negatives' probability mass.

    SynCo section 6.1 compares the largest synthetic logit of each type with the largest real one; the
    mass shares say how much of the loss's denominator each kind of negative takes.
    """
    out = {"max_real_logit": queue_logits.max(dim=1).values.mean().item()}
    dtype = torch.promote_types(queue_logits.dtype, torch.float32)
    logits = torch.cat([positive.unsqueeze(1), queue_logits, synthetic_logits], dim=1).to(dtype) / temperature
    probabilities = logits.softmax(dim=1)  # (B, 1 + K + S)
    negative_mass = 1 - probabilities[:, 0]  # (B,)
    k = queue_logits.shape[1]
    out["mass/real"] = (probabilities[:, 1 : 1 + k].sum(dim=1) / negative_mass).mean().item()
    synthetic_probabilities = probabilities[:, 1 + k :]  # (B, S)
    for t, name in enumerate(STRATEGIES, start=1):
        columns = strategy == t
        if not bool(columns.any()):
            continue
        out[f"max_synthetic_logit/{name}"] = synthetic_logits[:, columns].max(dim=1).values.mean().item()
        out[f"mass/{name}"] = (synthetic_probabilities[:, columns].sum(dim=1) / negative_mass).mean().item()
    return out


@torch.no_grad()
def false_negative_rates(
    query_labels: torch.Tensor, hardest: torch.Tensor, sources: torch.Tensor, queue_labels: torch.Tensor
) -> dict:
    """Share of the N hardest negatives, and of the synthetic negatives' sources, from the query's own class.

    Args:
        query_labels: (B,) class of each query's image (-1: unlabelled, ignored).
        hardest: (B, N) queue rows selected as hardest.
        sources: (B, S, 2) queue rows each synthetic negative was built from (-1 where unused).
        queue_labels: (K,) class of the image behind each queue row (-1: unknown, e.g. the random start).
    """
    known = query_labels >= 0
    out = {}
    if not bool(known.any()) or hardest.shape[1] == 0:
        return out
    labels = query_labels[known].unsqueeze(1)  # (b, 1)
    hard_labels = queue_labels[hardest[known]]  # (b, N)
    valid = hard_labels >= 0
    if bool(valid.any()):
        out["fn_rate_hard"] = ((hard_labels == labels) & valid).sum().item() / valid.sum().item()
    rows = sources[known].flatten(1)  # (b, 2S)
    used = rows >= 0
    source_labels = torch.where(used, queue_labels[rows.clamp(min=0)], torch.full_like(rows, -1))
    valid = source_labels >= 0
    if bool(valid.any()):
        out["fn_rate_sources"] = ((source_labels == labels) & valid).sum().item() / valid.sum().item()
    return out
