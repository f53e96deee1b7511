"""Cost of observing the negatives' statistics (``eval.analysis_every``) against a plain training step.

Runs the CPU recipe's SynCo step (synthesis on) with and without ``NegativeLog.observe``, in alternation.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from synco.analysis.log import NegativeLog
from synco.bench.measure import timed_rounds
from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.data.batch_augment import BatchAugment
from synco.data.datasets import load_dataset
from synco.data.loaders import channel_stats
from synco.methods import StepContext


def run_analysis_cost(recipes: str, repeats: int, every: int) -> dict:
    cfg = load_config(str(Path(recipes) / "synco.yaml"))
    data = load_dataset(cfg.data.dataset, cfg.data.root, True, cfg.data.cache_dir, cfg.data.image_size)
    mean, std = channel_stats(data.images)
    augment, g = BatchAugment(cfg.data.image_size, mean, std), torch.Generator().manual_seed(0)
    batch = cfg.train.batch_size
    images, index = data.images[:batch], torch.arange(batch)
    method = build_method(cfg, images.shape[1], len(data), seed=0)
    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=cfg.train.lr, momentum=0.9)
    log = NegativeLog(method.temperature, data.labels)
    batch_of_views = Batch(views=(augment(images, g), augment(images, g)), index=index)

    def step(observe: bool) -> None:
        out = method.training_step(batch_of_views, StepContext(10**9, g, g, observe=observe))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if observe:
            log.observe_step(out, batch_of_views)
        method.after_step(out, batch_of_views)

    times = timed_rounds({"plain": lambda: step(False), "observed": lambda: step(True)}, repeats, torch.device("cpu"))
    plain, observed = statistics.median(times["plain"]), statistics.median(times["observed"])
    return {"plain_ms": plain, "observed_ms": observed, "extra_ms": observed - plain,
            "share_percent": 100 * (observed - plain) / every / plain, "every": every}
