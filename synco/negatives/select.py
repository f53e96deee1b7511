"""Selection stage: the N hardest queue negatives of each query (SynCo section 4.1, Q-hat^N)."""

from __future__ import annotations

import torch

#: Below this queue-to-N ratio a plain ``topk`` over the whole row is faster than the threshold path
#: (measured on 2 CPU cores: K/N = 16 favours topk, K/N = 64 - the paper's 65536/1024 - the threshold).
_MIN_QUEUE_PER_HARD = 64
#: The threshold is the k-th largest of every ``stride``-th logit with k chosen so that about
#: ``_OVERSAMPLE * N`` logits of the full row pass it. A row with fewer than N candidates falls back
#: to ``topk``: for N = 1024 (stride 32, k = 48) that is a 2.3-sigma event, about 1 % of the rows.
_OVERSAMPLE = 1.5
#: Rows with more candidates than this many times N (ties at the threshold, e.g. masked rows) also
#: fall back to ``topk``, which bounds the candidate matrix.
_MAX_CANDIDATES_PER_HARD = 8


def check_num_hard(num_hard: int, queue_size: int) -> None:
    """The rule that N hardest negatives must exist: ``num_hard <= queue_size`` (the one place it is checked).

    Raises:
        ValueError: naming both numbers.
    """
    if num_hard > queue_size:
        raise ValueError(f"num_hard={num_hard} is larger than the queue ({queue_size} rows)")


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
    """Indices of the ``num_hard`` largest logits of each row, in decreasing order of the logit.

    Position i of the result means "the (i+1)-th hardest negative"; random draws over positions are
    therefore reproducible whatever kernel computed the selection. Among exactly equal logits the
    order (and, at the N-th value, the membership) is unspecified, as with ``torch.topk``.

    For a long queue (K >= 64 N) on a CPU a full ``topk`` over K is the most expensive part of SynCo's
    head: it copies every row into (value, index) pairs. Instead a threshold is estimated from a
    strided subsample, the few logits above it (about 1.5 N of K) are compacted, and ``topk`` runs on
    those. The result is exact: every row keeps all its logits >= the threshold, and a row with fewer
    than N of them (or with far too many) is recomputed with ``topk`` over the whole row.

    Args:
        queue_logits: (B, K) logits, already masked with :func:`mask_logits` if needed.
        num_hard: N, with 1 <= N <= K.

    Returns:
        (B, N) int64 queue rows.
    """
    logits = queue_logits.detach()
    batch, size = logits.shape
    # On an accelerator topk is one kernel with no host synchronisation, where the threshold path's nonzero and
    # counts.max() would each wait for the device: the threshold path is for CPUs only.
    if size < _MIN_QUEUE_PER_HARD * num_hard or logits.device.type != "cpu":
        return torch.topk(logits, num_hard, dim=1, sorted=True).indices  # (B, N)
    stride = min(32, max(1, num_hard // 32))
    kth = int(-(-_OVERSAMPLE * num_hard // stride))  # ceil(1.5 N / stride)
    sub = logits[:, ::stride]  # (B, ceil(K / stride))
    threshold = torch.topk(sub, kth, dim=1, sorted=False).values.amin(dim=1, keepdim=True)  # (B, 1)
    rows, cols = (logits >= threshold).nonzero(as_tuple=True)  # (M,), (M,) row-major: grouped by row
    counts = torch.bincount(rows, minlength=batch)  # (B,) candidates per row
    width = min(max(int(counts.max()), num_hard), _MAX_CANDIDATES_PER_HARD * num_hard)
    # Slot of each candidate within its row; rows with more than `width` candidates pile their excess
    # into the last slot and are recomputed below, like rows with fewer than N.
    offsets = counts.cumsum(0) - counts  # (B,) first candidate of each row
    slot = (torch.arange(rows.numel(), device=rows.device) - offsets.index_select(0, rows)).clamp_(max=width - 1)
    flat = rows * width + slot  # (M,) position in the (B, width) candidate matrix
    source = rows * size + cols  # (M,) position in the flattened logits
    # Padding is -inf, below even a masked logit (finfo.min), so it is never picked before a real row.
    cand_values = logits.new_full((batch * width,), float("-inf"))
    cand_values.index_put_((flat,), logits.reshape(-1).index_select(0, source))
    cand_rows = torch.full((batch * width,), -1, dtype=torch.long, device=logits.device)
    cand_rows.index_put_((flat,), cols)
    top = torch.topk(cand_values.view(batch, width), num_hard, dim=1, sorted=True).indices  # (B, N)
    hard = torch.gather(cand_rows.view(batch, width), 1, top)  # (B, N)
    redo = ((counts < num_hard) | (counts > width)).nonzero().squeeze(1)  # rows the threshold failed
    if redo.numel():
        hard[redo] = torch.topk(logits.index_select(0, redo), num_hard, dim=1, sorted=True).indices
    return hard
