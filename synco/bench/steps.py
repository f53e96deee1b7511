"""Whole training steps at the CPU recipe's scale, and the input pipeline that feeds them.

Measures side by side, on real images of the recipe's dataset:
  - one training step (both encoders forward, backward, SGD, momentum update, enqueue) of MoCo-v2,
    MoCHI and SynCo, built from the same recipe with only ``method.name`` changed, synthesis on;
  - batched augmentation of two views of a batch (``synco.data.batch_augment``, what the trainer
    uses by default), and per-image torchvision augmentation on one thread (what one DataLoader
    worker delivers).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from synco.bench.measure import median_ms, median_ratios, peak_mib, timed_rounds
from synco.data.batch_augment import BatchAugment
from synco.data.datasets import load_dataset
from synco.data.loaders import channel_stats
from synco.data.transforms import TwoViews, pretrain_transform
from synco.engine.config import load_config
from synco.methods.build import build_method

METHODS = {"moco_v2": "MoCo-v2", "mochi": "MoCHI", "synco": "SynCo"}


def run_steps(recipes: str, repeats: int = 7, overrides: list[str] | None = None) -> dict:
    """Returns ``{"setting": str, "steps": rows, "pipeline": rows}`` with ms, images/s and ratios.

    Args:
        recipes: directory holding ``moco_v2.yaml``, ``mochi.yaml`` and ``synco.yaml``.
        repeats: timed repeats per candidate (medians are reported).
        overrides: KEY=VALUE overrides applied to all three recipes.
    """
    overrides = list(overrides or [])
    cfg = load_config(str(Path(recipes) / "synco.yaml"), overrides)
    data = load_dataset(cfg.data.dataset, cfg.data.root, True, cfg.data.cache_dir, cfg.data.image_size)
    mean, std = channel_stats(data.images)
    batch = cfg.train.batch_size
    images = data.images[:batch]
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    augment = BatchAugment(cfg.data.image_size, mean, std, cfg.data.crop_min_scale)

    step_fns, memory = {}, {}
    for method_name, label in METHODS.items():
        method_cfg = load_config(str(Path(recipes) / f"{method_name}.yaml"), overrides)
        method = build_method(method_cfg, images.shape[1], len(data), seed=0)
        opt = torch.optim.SGD(method.encoder_q.parameters(), lr=cfg.train.lr, momentum=0.9)
        view_q, view_k = augment(images, g), augment(images, g)
        index = torch.arange(batch)

        def step(method=method, opt=opt, view_q=view_q, view_k=view_k, index=index):
            out = method.training_step(view_q, view_k, index, True, g)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            method.momentum_update()
            method.queue.enqueue(out["key"], index)

        step_fns[label] = step
    step_times = timed_rounds(step_fns, repeats, device)
    step_ms = {label: statistics.median(t) for label, t in step_times.items()}
    ratios = median_ratios(step_times, "MoCo-v2")
    for label, fn in step_fns.items():
        memory[label] = peak_mib(fn, device)
    steps = [
        {"step": label, "ms": ms, "images_per_s": batch / ms * 1e3, "time_ratio": ratios[label],
         "peak_mib": memory[label], "memory_ratio": memory[label] / memory["MoCo-v2"]}
        for label, ms in step_ms.items()
    ]

    per_image = TwoViews(pretrain_transform(
        cfg.data.augmentation, cfg.data.image_size, images.shape[1], mean, std, cfg.data.crop_min_scale
    ))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_image_ms = median_ms({"x": lambda: [per_image(images[i]) for i in range(64)]}, repeats, device)["x"]
    torch.set_num_threads(threads)
    batched_ms = median_ms({"x": lambda: (augment(images, g), augment(images, g))}, repeats, device)["x"]
    synco_ms = step_ms["SynCo"]
    pipeline = [
        {"pipeline": "batched augmentation, 2 views (trainer default)", "ms": batched_ms},
        {"pipeline": "per-image torchvision, 2 views, 1 worker", "ms": per_image_ms * batch / 64},
    ]
    for row in pipeline:
        row["images_per_s"] = batch / row["ms"] * 1e3
        row["speed_vs_synco_step"] = synco_ms / row["ms"]
    setting = (f"{cfg.data.dataset}, {cfg.model.backbone}, batch {batch}, K={cfg.method.queue_size}, "
               f"N={cfg.method.negatives.num_hard}, counts {tuple(cfg.method.negatives[k] for k in _COUNT_KEYS)}, "
               f"{torch.get_num_threads()} threads")
    return {"setting": setting, "steps": steps, "pipeline": pipeline}


_COUNT_KEYS = ("num_interpolate", "num_extrapolate", "num_mixup", "num_noise", "num_perturb", "num_adversarial")
