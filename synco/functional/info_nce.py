"""InfoNCE with memory-queue and synthetic negatives (Eq. 1, 10 and 11 of SynCo)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_logits(
    query: torch.Tensor,
    key: torch.Tensor,
    queue_logits: torch.Tensor,
    synthetic_logits: torch.Tensor | None = None,
    temperature: float = 0.2,
) -> torch.Tensor:
    """Tempered logits ``[q.k, q.n_1..q.n_K, q.s_1..q.s_S] / tau`` with the positive in column 0.

    Args:
        query: (B, D) unit rows.
        key: (B, D) unit rows; the positive of each query.
        queue_logits: (B, K) un-tempered ``q.n`` (masked entries may hold ``finfo.min``).
        synthetic_logits: optional (B, S) un-tempered ``q.s``.
        temperature: tau.

    Returns:
        (B, 1 + K + S) logits divided by tau.
    """
    positive = torch.einsum("bd,bd->b", query, key).unsqueeze(1)  # (B, 1)
    parts = [positive, queue_logits]
    if synthetic_logits is not None and synthetic_logits.shape[1] > 0:
        parts.append(synthetic_logits)
    return torch.cat(parts, dim=1) / temperature  # (B, 1 + K + S)


def info_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    queue_logits: torch.Tensor,
    synthetic_logits: torch.Tensor | None = None,
    temperature: float = 0.2,
) -> torch.Tensor:
    """SynCo's modified InfoNCE (Eq. 10-11), averaged over the batch.

    ``L = -log( exp(q.k/tau) / (exp(q.k/tau) + sum_n exp(q.n/tau) + sum_s exp(q.s/tau)) )``,
    computed as a (1 + K + S)-way cross-entropy with target 0 (log-sum-exp, never exp then log).
    With ``synthetic_logits`` None or empty this is MoCo's Eq. 1.

    Args: as :func:`info_nce_logits`.

    Returns:
        Scalar mean loss.
    """
    logits = info_nce_logits(query, key, queue_logits, synthetic_logits, temperature)  # (B, 1+K+S)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # (B,)
    # Half-precision logits are promoted to float32 for the log-sum-exp; float64 stays float64.
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), target)
