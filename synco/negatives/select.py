"""Selection stage: the N hardest queue negatives of each query (SynCo section 4.1, Q-hat^N)."""

from __future__ import annotations

import torch


def mask_logits(queue_logits: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
    """Replace excluded entries by the dtype's lowest value so they are never selected or counted.

    Args:
        queue_logits: (B, K) ``q.n`` for every queue row.
        exclude: optional (B, K) bool, True where a queue row must not act as a negative
            (for example an older key of the query's own image).

    Returns:
        (B, K) logits; a new tensor when ``exclude`` is given, else ``queue_logits`` itself.
    """
    if exclude is None:
        return queue_logits
    lowest = torch.finfo(queue_logits.dtype).min
    return queue_logits.masked_fill(exclude, lowest)  # (B, K)


def select_hardest(queue_logits: torch.Tensor, num_hard: int) -> torch.Tensor:
    """Indices of the ``num_hard`` largest logits of each row, in decreasing order.

    Sorted order makes position i of the result mean "the (i+1)-th hardest negative", which keeps
    random draws over positions reproducible whatever kernel ``topk`` uses.

    Args:
        queue_logits: (B, K) logits, already masked with :func:`mask_logits` if needed.
        num_hard: N, with 1 <= N <= K.

    Returns:
        (B, N) int64 queue rows.
    """
    return torch.topk(queue_logits.detach(), num_hard, dim=1, sorted=True).indices  # (B, N)
