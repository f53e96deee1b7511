"""Continual-learning metrics from the accuracy matrix R (T x T, in percent).

R[i][j] is the accuracy on task j's classes (or shard) after training task i. Published code disagrees on
the details (neither PNR nor CaSSLe defines forgetting or transfer; their repositories log only per-task
accuracies), so these are the standard definitions, with their sources:

- average accuracy after task i (Chaudhry et al. 2018, "Riemannian Walk", A_k):
  ``A_i = mean_{j <= i} R[i][j]``; the final one, ``A_{T-1}``, is the usual headline.
- forgetting of task j (Chaudhry et al. 2018, f_j^k at k = T - 1):
  ``F_j = max_{i < T-1} R[i][j] - R[T-1][j]`` for j < T - 1 (the best accuracy ever reached on j, from task j
  on, minus the final one); average forgetting is the mean over j < T - 1.
- backward transfer (Lopez-Paz & Ranzato 2017, GEM, BWT): ``mean_{j < T-1} (R[T-1][j] - R[j][j])``; negative
  values mean forgetting.
- forward transfer (GEM, FWT): ``mean_{j >= 1} (R[j-1][j] - b_j)``, b_j the accuracy of a randomly
  initialised encoder on task j (the reference of "transfer before training on it").

Tasks are evaluated by kNN or a linear probe restricted to their classes (docs/continual.md).
"""

from __future__ import annotations


def _check(matrix: list[list[float]]) -> int:
    size = len(matrix)
    if size == 0 or any(len(row) != size for row in matrix):
        raise ValueError(f"the accuracy matrix must be T x T, got rows of lengths {[len(r) for r in matrix]}")
    return size


def average_accuracy(matrix: list[list[float]], after: int | None = None) -> float:
    """``A_i = mean_{j <= i} R[i][j]`` after task ``after`` (default: the last)."""
    size = _check(matrix)
    i = size - 1 if after is None else after
    return sum(matrix[i][: i + 1]) / (i + 1)


def forgetting(matrix: list[list[float]]) -> list[float]:
    """Per task j < T - 1: ``max_{j <= i < T-1} R[i][j] - R[T-1][j]`` (an empty list for T = 1)."""
    size = _check(matrix)
    last = size - 1
    return [max(matrix[i][j] for i in range(j, last)) - matrix[last][j] for j in range(last)]


def average_forgetting(matrix: list[list[float]]) -> float | None:
    """Mean of :func:`forgetting` over the tasks before the last; None for a single task."""
    values = forgetting(matrix)
    return sum(values) / len(values) if values else None


def backward_transfer(matrix: list[list[float]]) -> float | None:
    """GEM's BWT: ``mean_{j < T-1} (R[T-1][j] - R[j][j])``; None for a single task."""
    size = _check(matrix)
    if size < 2:
        return None
    return sum(matrix[-1][j] - matrix[j][j] for j in range(size - 1)) / (size - 1)


def forward_transfer(matrix: list[list[float]], random_init: list[float]) -> float | None:
    """GEM's FWT: ``mean_{j >= 1} (R[j-1][j] - b_j)`` with ``random_init[j] = b_j``; None for a single task."""
    size = _check(matrix)
    if len(random_init) != size:
        raise ValueError(f"random_init needs one accuracy per task ({size}), got {len(random_init)}")
    if size < 2:
        return None
    return sum(matrix[j - 1][j] - random_init[j] for j in range(1, size)) / (size - 1)


def summary(matrix: list[list[float]], random_init: list[float] | None = None) -> dict:
    """Every metric above as ``continual/...`` entries."""
    out = {
        "continual/average_accuracy": average_accuracy(matrix),
        "continual/average_accuracy_per_task": [average_accuracy(matrix, i) for i in range(len(matrix))],
        "continual/forgetting": forgetting(matrix),
        "continual/average_forgetting": average_forgetting(matrix),
        "continual/backward_transfer": backward_transfer(matrix),
    }
    if random_init is not None:
        out["continual/forward_transfer"] = forward_transfer(matrix, random_init)
    return out
