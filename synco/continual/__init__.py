"""Continual self-supervised learning: task streams and the metrics of the accuracy matrix (issue 13, in
progress: the losses are in ``synco.functional.continual``; the ``synco continual`` loop is not built yet)."""

from synco.continual.metrics import (
    average_accuracy,
    average_forgetting,
    backward_transfer,
    forgetting,
    forward_transfer,
    summary,
)
from synco.continual.tasks import check_partition, class_split, task_indices

__all__ = ["average_accuracy", "average_forgetting", "backward_transfer", "check_partition", "class_split",
           "forgetting", "forward_transfer", "summary", "task_indices"]
