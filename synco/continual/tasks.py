"""Task streams for continual self-supervised learning: which images each task trains on.

- class-incremental (the authors' split in CaSSLe and PNR): ``seed_everything(5)`` then
  ``torch.randperm(num_classes).chunk(T)``; here a generator seeded with ``seed`` (5 by default) draws the
  same permutation, so task t holds the classes of chunk t and every image of those classes.
- data-incremental: a random permutation of all images (generator seeded with ``seed``) cut into T equal
  shards (the first ``N mod T`` shards one image longer).
- an explicit class list per task (``tasks=[[0, 1], [2, 3], ...]``) must partition the classes.

Each task trains only on its own images, without labels.
"""

from __future__ import annotations

import torch

SPLITS = ("class", "data")


def class_split(num_classes: int, num_tasks: int, seed: int = 5) -> list[list[int]]:
    """The classes of each task: ``randperm(num_classes)`` from ``seed``, chunked into ``num_tasks``.

    Raises:
        ValueError: more tasks than classes, or fewer than one.
    """
    if num_tasks < 1:
        raise ValueError(f"continual.tasks must be at least 1, got {num_tasks}")
    if num_tasks > num_classes:
        raise ValueError(f"continual.tasks={num_tasks} is more than the {num_classes} classes: a task would be empty")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_classes, generator=g)
    return [chunk.tolist() for chunk in order.chunk(num_tasks)]


def check_partition(tasks: list[list[int]], num_classes: int) -> None:
    """An explicit class list per task must use every class exactly once.

    Raises:
        ValueError: naming the classes missing, repeated or out of range.
    """
    seen = [c for task in tasks for c in task]
    outside = sorted({c for c in seen if not 0 <= c < num_classes})
    repeated = sorted({c for c in seen if seen.count(c) > 1})
    missing = sorted(set(range(num_classes)) - set(seen))
    if outside or repeated or missing or any(not task for task in tasks):
        raise ValueError(
            f"the task list does not partition the {num_classes} classes: out of range {outside}, "
            f"in several tasks {repeated}, in no task {missing}, empty tasks {[i for i, t in enumerate(tasks) if not t]}"
        )


def task_indices(labels: torch.Tensor, split: str, num_tasks: int, seed: int = 5,
                 tasks: list[list[int]] | None = None) -> tuple[list[torch.Tensor], list[list[int]] | None]:
    """(image indices of each task (sorted), classes of each task or None for data-incremental).

    Args:
        labels: (N,) classes of the training images (used to split by class, never to train).
        split: ``"class"`` or ``"data"``.
        tasks: explicit classes per task (class split only).
    """
    if split not in SPLITS:
        raise ValueError(f"continual.split must be one of {SPLITS}, got {split!r}")
    num_classes = int(labels.max()) + 1
    if split == "data":
        if tasks is not None:
            raise ValueError("continual.task_classes is for the class split; the data split shards images")
        if num_tasks < 1 or num_tasks > len(labels):
            raise ValueError(f"continual.tasks={num_tasks} must lie in [1, {len(labels)}] for the data split")
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(labels), generator=g)
        return [shard.sort().values for shard in order.tensor_split(num_tasks)], None
    if tasks is None:
        tasks = class_split(num_classes, num_tasks, seed)
    else:
        check_partition(tasks, num_classes)
    indices = [torch.isin(labels, torch.tensor(classes)).nonzero().squeeze(1) for classes in tasks]
    return indices, [list(t) for t in tasks]
