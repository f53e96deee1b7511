"""The cost of a continual regulariser's step: MoCo-v2+ alone (fine-tuning) against CaSSLe and PNR on it.

Each row is one whole training step (forward of the online, momentum and frozen previous-task encoders,
predictor, loss, backward, SGD, momentum update, enqueues) of the recipe's method with only
``continual.regularizer`` changed, as built for a later task (``continual.current_task=1``: the first task has
no previous model, so every regulariser trains it as plain MoCo-v2+), on the same augmented views of the
recipe's first training images.
"""

from __future__ import annotations

import statistics

import torch

from synco.bench.measure import median_ratios, peak_mib, timed_rounds
from synco.bench.steps import recipe_views, training_step_function
from synco.compose import build_method
from synco.config import load_config

REGULARIZERS = {"none": "MoCo-v2+ (fine-tuning)", "cassle": "MoCo-v2+ + CaSSLe", "pnr": "MoCo-v2+ + PNR"}


def continual_step_rows(recipe: str, repeats: int = 7, overrides: list[str] | None = None,
                        device: str = "cpu") -> tuple[list[dict], str]:
    """(rows with ms, images/s, time and memory ratios to the plain base, a setting line)."""
    overrides = list(overrides or [])
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(0)
    cfg = load_config(recipe, overrides)
    views, data, _ = recipe_views(cfg, cfg.train.batch_size, device, g)
    fns, built = {}, {}
    for regularizer, label in REGULARIZERS.items():
        method_cfg = load_config(recipe, [*overrides, f"continual.regularizer={regularizer}", "continual.current_task=1"])
        method = build_method(method_cfg, data.images.shape[1], len(data), seed=0).to(device)
        built[label] = type(method).__name__ + (f"({method.kind})" if hasattr(method, "kind") else "")
        fns[label] = training_step_function(method, cfg.train.lr, views, g)
    times = timed_rounds(fns, repeats, device)
    base = REGULARIZERS["none"]
    ratios = median_ratios(times, base)
    memory = {label: peak_mib(fn, device) for label, fn in fns.items()}
    rows = [{"step": label, "method": built[label], "ms": statistics.median(t), "images_per_s": views.shape[1] / statistics.median(t) * 1e3,
             "time_ratio": ratios[label], "peak_mib": memory[label], "memory_ratio": memory[label] / memory[base]}
            for label, t in times.items()]
    setting = (f"{cfg.data.dataset}, {cfg.model.backbone}, batch {cfg.train.batch_size}, method {cfg.method.name} "
               f"(symmetric={cfg.method.symmetric}), K={cfg.method.queue_size} per view, {device}")
    return rows, setting
