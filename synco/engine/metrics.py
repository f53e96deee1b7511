"""``metrics.jsonl``: one JSON object per line with flat keys (``train/loss``, ``eval/knn_top1``)."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsWriter:
    """Appends records to ``run_dir/metrics.jsonl``; only the process that owns it writes.

    The numeric entries of each record also go to Lightning loggers (``trainer.loggers``: CSV,
    TensorBoard, W&B), at the record's ``step`` (or its epoch when it has none).
    """

    def __init__(self, path: str | Path, enabled: bool = True, loggers=()) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.loggers = list(loggers)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
        numbers = {k: float(v) for k, v in record.items()
                   if isinstance(v, (int, float)) and k not in ("step", "epoch")}
        if numbers and self.loggers:
            step = int(record.get("step", record.get("epoch", 0)))
            for logger in self.loggers:
                logger.log_metrics(numbers, step=step)

    def close(self) -> None:
        """Flush and finalise the loggers (their files are complete afterwards)."""
        for logger in self.loggers:
            logger.finalize("success")


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl`` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: str | Path, epoch: int, step: int) -> None:
    """Drop records written after a checkpoint (epoch, step), so a resumed run does not log them twice.

    Written to a temporary file and renamed, like checkpoints.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("epoch", 0) <= epoch and r.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    tmp.replace(path)
