"""Whole training steps at the CPU recipe's scale, and the input pipeline that feeds them.

Measures side by side, on real images of the recipe's dataset:
  - one training step (encoders forward, backward, SGD, momentum update, enqueue) of MoCo-v2, MoCHI, SynCo
    (the same recipe with only ``method.name`` changed, synthesis on) and SimCLR (its recipe beside them),
    eager and, when asked, with ``trainer.compile`` (``Method.compile_parts``);
  - batched augmentation of two views of a batch (``synco.data.batch_augment``, what the trainer
    uses by default), and per-image torchvision augmentation on one thread (what one DataLoader
    worker delivers).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from synco.bench.measure import median_ms, median_ratios, peak_mib, timed_rounds
from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.data.batch_augment import BatchAugment
from synco.data.datasets import load_dataset
from synco.data.loaders import channel_stats
from synco.data.transforms import TwoViews, pretrain_transform
from synco.methods import StepContext
from synco.negatives import COUNT_KEYS

METHODS = {"moco_v2": "MoCo-v2", "mochi": "MoCHI", "synco": "SynCo", "simclr": "SimCLR",
           "simclr_synco": "SimCLR + synthesis"}
#: Rows measured against another row besides MoCo-v2: the cost of synthesis on its plain method.
SYNTHESIS_BASES = {"SimCLR + synthesis": "SimCLR", "SynCo": "MoCo-v2"}


def training_step_function(method, lr: float, views: torch.Tensor, generator: torch.Generator):
    """A function running one whole training step of ``method`` on the view pair ``views`` (2, B, C, H, W):
    forward, backward, SGD with momentum, ``after_step``; past any warm-up (synthesis on)."""
    opt = torch.optim.SGD(method.trainable_parameters(), lr=lr, momentum=0.9)
    batch = Batch(views=(views[0], views[1]), index=torch.arange(views.shape[1], device=views.device))
    context = StepContext(epoch=10**9, generator=generator, shuffle_generator=generator)

    def step():
        out = method.training_step(batch, context)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step(out, batch)

    return step


def recipe_views(cfg, batch: int, device: torch.device, generator: torch.Generator):
    """(two augmented views (2, B, C, H, W) of the recipe's first ``batch`` training images, the data set, the
    batched augmentation that made them)."""
    size = cfg.data.image_size
    data = load_dataset(cfg.data.dataset, cfg.data.root, True, cfg.data.cache_dir, size)
    mean, std = channel_stats(data.images)
    augment = BatchAugment(size, mean, std, cfg.data.crop_min_scale).to(device)
    images = data.images[:batch].to(device)
    return torch.stack([augment(images, generator), augment(images, generator)]), data, augment


def run_steps(
    recipes: str,
    repeats: int = 7,
    overrides: list[str] | None = None,
    pattern: str = "{method}.yaml",
    synthetic: bool = False,
    device: str = "cpu",
    batch: int | None = None,
    compile: bool = False,
) -> dict:
    """Returns ``{"setting": str, "steps": rows, "pipeline": rows, "warmup_s": float}`` with ms, images/s and
    ratios; with ``compile`` every method also runs compiled (rows "<method>, compiled"), ``same_mode_ratio``
    is the ratio to MoCo-v2 in the same mode and ``speedup`` the eager step's time over the compiled one's.

    Args:
        recipes: directory holding the recipes of the three methods.
        repeats: timed repeats per candidate (medians are reported).
        overrides: KEY=VALUE overrides applied to all three recipes.
        pattern: recipe file name, ``{method}`` standing for moco_v2 / mochi / synco.
        synthetic: random images of the recipe's size instead of the data set (for recipes whose data
            is not on this machine, e.g. ImageNet); the input pipeline rows are then left out.
        device: where the step runs (``cuda`` on a GPU machine).
        batch: images per step (default: the recipe's global batch; e.g. 32 for one of 8 GPUs).
    """
    overrides = list(overrides or [])
    cfg = load_config(str(Path(recipes) / pattern.format(method="synco")), overrides)
    batch = batch or cfg.train.batch_size
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(0)
    size = cfg.data.image_size
    if synthetic:
        channels, num_images, data = 3, 1_281_167, None
        view_pairs = [torch.randn(2, batch, 3, size, size, device=device, generator=g) for _ in range(1)]
    else:
        pair, data, augment = recipe_views(cfg, batch, device, g)
        view_pairs = [pair]
        mean, std = augment.mean.flatten().tolist(), augment.std.flatten().tolist()  # the stats it normalises with
        images = data.images[:batch]
        channels, num_images = images.shape[1], len(data)
        images_on_device = images.to(device)

    step_fns, memory = {}, {}
    variants = [(name, label, False) for name, label in METHODS.items()]
    if compile:
        variants += [(name, f"{label}, compiled", True) for name, label in METHODS.items()]
    for method_name, label, compiled in variants:
        recipe = Path(recipes) / pattern.format(method=method_name)
        if not recipe.is_file():  # e.g. no SimCLR recipe beside ImageNet's MoCo family
            continue
        method_cfg = load_config(str(recipe), overrides)
        method = build_method(method_cfg, channels, num_images, seed=0).to(device)
        if compiled:
            method.compile_parts()
        step = training_step_function(method, cfg.train.lr, view_pairs[0], g)
        step_fns[label] = step
    started = time.perf_counter()
    for fn in step_fns.values():  # compile warm-up (and eager warm-up): two untimed calls each
        fn()
        fn()
    warmup_s = time.perf_counter() - started
    step_times = timed_rounds(step_fns, repeats, device, warmup=0)
    step_ms = {label: statistics.median(t) for label, t in step_times.items()}
    ratios = median_ratios(step_times, "MoCo-v2")
    synthesis_cost = {label: median_ratios(step_times, base)[label] for label, base in SYNTHESIS_BASES.items()
                      if label in step_times and base in step_times}
    same_mode = median_ratios(step_times, "MoCo-v2, compiled") if compile else {}
    for label, fn in step_fns.items():
        memory[label] = peak_mib(fn, device)
    steps = [
        {"step": label, "ms": ms, "images_per_s": batch / ms * 1e3, "time_ratio": ratios[label],
         "same_mode_ratio": same_mode.get(label, ratios[label]),
         "speedup": statistics.median(e / c for e, c in zip(step_times[label.removesuffix(", compiled")],
                                                            step_times[label])),
         "peak_mib": memory[label], "memory_ratio": memory[label] / memory["MoCo-v2"]}
        for label, ms in step_ms.items()
    ]
    setting = (f"{'synthetic ' + str(size) + ' px images' if synthetic else cfg.data.dataset}, {cfg.model.backbone}, "
               f"batch {batch}, K={cfg.method.queue_size}, N={cfg.method.negatives.num_hard}, "
               f"counts {tuple(cfg.method.negatives[k] for k in COUNT_KEYS)}, {device}")
    if synthetic:
        return {"setting": setting, "steps": steps, "pipeline": [], "warmup_s": warmup_s,
                "synthesis_cost": synthesis_cost}

    per_image = TwoViews(pretrain_transform(
        cfg.data.augmentation, cfg.data.image_size, images.shape[1], mean, std, cfg.data.crop_min_scale
    ))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_image_ms = median_ms({"x": lambda: [per_image(images[i]) for i in range(64)]}, repeats, torch.device("cpu"))["x"]
    torch.set_num_threads(threads)
    batched_ms = median_ms({"x": lambda: (augment(images_on_device, g), augment(images_on_device, g))}, repeats,
                           device)["x"]
    synco_ms = step_ms["SynCo"]
    pipeline = [
        {"pipeline": "batched augmentation, 2 views (trainer default)", "ms": batched_ms},
        {"pipeline": "per-image torchvision, 2 views, 1 worker", "ms": per_image_ms * batch / 64},
    ]
    for row in pipeline:
        row["images_per_s"] = batch / row["ms"] * 1e3
        row["speed_vs_synco_step"] = synco_ms / row["ms"]
    return {"setting": setting, "steps": steps, "pipeline": pipeline, "warmup_s": warmup_s,
            "synthesis_cost": synthesis_cost}

