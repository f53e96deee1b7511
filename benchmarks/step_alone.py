"""One method's training step timed alone (no other model in memory), eager or with ``trainer.compile``.

``synco bench steps`` alternates all methods in one process, which is fair between them but keeps eight models
and their compiled code in memory; this times one, as a training run sees it. Medians of 7 steps after 2 warm-up
steps (the warm-up includes compilation). Run it once per setting, nothing else running:

    .venv/bin/python benchmarks/step_alone.py eager
    .venv/bin/python benchmarks/step_alone.py compiled
    .venv/bin/python benchmarks/step_alone.py compiled --profile model.bn_splits=1
    .venv/bin/python benchmarks/step_alone.py compiled --profile --shapes   # each convolution layer apart
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> None:
    from synco.bench.steps import recipe_views, training_step_function
    from synco.compose import build_method
    from synco.config import load_config
    from synco.engine.cpu_memory import keep_freed_cpu_memory

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["eager", "compiled"])
    parser.add_argument("--recipe", default="configs/pretrain/cifar10/synco.yaml")
    parser.add_argument("--profile", action="store_true", help="also the profiler's table of 3 steps")
    parser.add_argument("--shapes", action="store_true", help="with --profile: one row per operator and input shape")
    parser.add_argument("--bf16", action="store_true", help="the step under CPU autocast to bfloat16 (bf16-mixed)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    keep_freed_cpu_memory()  # as training does (trainer.reuse_cpu_memory)
    cfg = load_config(args.recipe, args.overrides)
    g = torch.Generator().manual_seed(0)
    views, data, _ = recipe_views(cfg, cfg.train.batch_size, torch.device("cpu"), g)
    method = build_method(cfg, data.images.shape[1], len(data), 0)
    if args.mode == "compiled":
        method.compile_parts(cfg.trainer.compile_mode)
    step = training_step_function(method, cfg.train.lr, views, g)
    if args.bf16:
        plain_step = step

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                plain_step()

    started = time.perf_counter()
    step()
    step()
    warmup = time.perf_counter() - started
    times = []
    for _ in range(7):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1e3)
    print(f"{cfg.method.name} {args.mode}{' bf16' if args.bf16 else ''}: median {statistics.median(times):.1f} ms per step "
          f"(min {min(times):.1f}, max {max(times):.1f}); warm-up {warmup:.1f} s; {torch.get_num_threads()} threads")
    if args.profile:
        from torch.profiler import profile

        with profile(record_shapes=args.shapes) as prof:
            for _ in range(3):
                step()
        table = prof.key_averages(group_by_input_shape=args.shapes)
        print(table.table(sort_by="self_cpu_time_total", row_limit=15, max_shapes_column_width=90))


if __name__ == "__main__":
    main()
