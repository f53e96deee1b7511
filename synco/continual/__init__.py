"""Continual self-supervised learning: task streams, the regularisers (CaSSLe, PNR), the online probe, the
``synco continual`` loop and the metrics of the accuracy matrix; the losses are in ``synco.functional.continual``."""

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
