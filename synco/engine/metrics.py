"""``metrics.jsonl``: one JSON object per line with flat keys (``train/loss``, ``eval/knn_top1``)."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsWriter:
    """Appends records to ``run_dir/metrics.jsonl``; only the process that owns it writes."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl`` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
