"""One SynCo training step eager and under two ``torch.compile`` modes, alternated in one process.

Three models of the CPU recipe (eager, ``trainer.compile_mode=default`` and a second mode, by default
``max-autotune-no-cudagraphs``) take turns for 11 rounds after two warm-up calls each; prints the median
milliseconds and the median per-round speed-up over eager. Nothing else should run on the machine:

    .venv/bin/python benchmarks/compile_modes.py [MODE]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> None:
    from synco.bench.measure import median_ratios, timed_rounds
    from synco.bench.steps import recipe_views, training_step_function
    from synco.compose import build_method
    from synco.config import load_config
    from synco.engine.cpu_memory import keep_freed_cpu_memory

    other_mode = sys.argv[1] if len(sys.argv) > 1 else "max-autotune-no-cudagraphs"
    keep_freed_cpu_memory()  # as training does (trainer.reuse_cpu_memory)
    cfg = load_config("configs/pretrain/cifar10/synco.yaml", [])
    generator = torch.Generator().manual_seed(0)
    views, data, _ = recipe_views(cfg, cfg.train.batch_size, torch.device("cpu"), generator)
    steps = {}
    for mode in ["eager", "default", other_mode]:
        method = build_method(cfg, data.images.shape[1], len(data), 0)
        if mode != "eager":
            method.compile_parts(mode)
        steps[mode] = training_step_function(method, cfg.train.lr, views, generator)
    started = time.perf_counter()
    for step in steps.values():
        step()
        step()
    print(f"warm-up (two calls of each) {time.perf_counter() - started:.1f} s")
    times = timed_rounds(steps, 11, torch.device("cpu"), warmup=0)
    speedups = median_ratios(times, "eager")
    for mode, values in times.items():
        print(f"{mode:<28} median {statistics.median(values):7.1f} ms   eager / this {1 / speedups[mode]:.3f}")


if __name__ == "__main__":
    main()
