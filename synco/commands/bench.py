"""``synco bench heads|steps``: print the benchmark tables (figures measured in this one run)."""

from __future__ import annotations

import argparse
import platform

import torch


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format spec)."""
    widths = [max(len(header), 12, *(len(format(r[key], spec)) for r in rows)) for key, header, spec in columns]
    print("  ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, ((_, h, _), w) in enumerate(zip(columns, widths))))
    for row in rows:
        cells = []
        for i, ((key, _, spec), w) in enumerate(zip(columns, widths)):
            cells.append(f"{row[key]:<{w}}" if i == 0 else f"{row[key]:>{w}{spec}}")
        print("  ".join(cells))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark negative heads and training steps (medians, ratios, peak memory)")
    p.add_argument("--malloc-defaults", action="store_true",
                   help="keep glibc's malloc defaults (by default freed large blocks are reused, as in training)")
    what = p.add_subparsers(dest="bench", required=True)
    lo = what.add_parser("losses", help="label-aware losses against NT-Xent / InfoNCE, and the label-aware queue's step cost")
    lo.add_argument("--batch", type=int, default=256)
    lo.add_argument("--dim", type=int, default=128)
    lo.add_argument("--queue", type=int, default=65536)
    lo.add_argument("--repeats", type=int, default=7)
    lo.add_argument("--recipe", default="configs/pretrain/cifar10/synco.yaml", help="recipe of the step rows")
    co = what.add_parser("continual", help="a PNR / CaSSLe step against the plain MoCo-v2+ step (time, memory)")
    co.add_argument("--recipe", default="configs/continual/cifar10_5tasks_mocov2plus.yaml")
    co.add_argument("--device", default="cpu")
    co.add_argument("--repeats", type=int, default=7)
    co.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the recipe")
    h = what.add_parser("heads", help="queue logits + selection + synthesis + loss + backward at the paper's setting")
    h.add_argument("--batch", type=int, default=256)
    h.add_argument("--queue", type=int, default=65536)
    h.add_argument("--dim", type=int, default=128)
    h.add_argument("--num-hard", type=int, default=1024)
    h.add_argument("--counts", type=int, nargs=6, default=[256, 256, 256, 64, 64, 64], metavar="N_t")
    h.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    h.add_argument("--device", default="cpu")
    h.add_argument("--repeats", type=int, default=7)
    h.add_argument("--compile", action="store_true",
                   help="also each head compiled with torch.compile (trainer.compile), side by side")
    h.add_argument("--profile", action="store_true",
                   help="also print the self time per call of each operator, MoCo-v2 against SynCo")
    pipe = what.add_parser("pipeline", help="images/s of decoding + augmentation from image files (DataLoader workers)")
    pipe.add_argument("--root", default=None, help="an ImageNet-style folder (ROOT/train/<class>/*); default: synthetic JPEGs")
    pipe.add_argument("--image-size", type=int, default=224)
    pipe.add_argument("--images", type=int, default=512)
    pipe.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    pipe.add_argument("--batch", type=int, default=32)
    ana = what.add_parser("analysis", help="cost of logging the negatives' statistics during training")
    ana.add_argument("--recipes", default="configs/pretrain/cifar10")
    ana.add_argument("--repeats", type=int, default=15)
    ana.add_argument("--every", type=int, default=20, help="eval.analysis_every")
    s = what.add_parser("steps", help="training steps of MoCo-v2 / MoCHI / SynCo and the input pipeline")
    s.add_argument("--recipes", default="configs/pretrain/cifar10",
                   help="directory with moco_v2.yaml, mochi.yaml and synco.yaml")
    s.add_argument("--pattern", default="{method}.yaml", help="recipe file name, e.g. '{method}_200ep.yaml'")
    s.add_argument("--synthetic", action="store_true", help="random images of the recipe's size (no data needed)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch", type=int, default=None, help="images per step (default: the recipe's batch)")
    s.add_argument("--repeats", type=int, default=7)
    s.add_argument("--compile", action="store_true",
                   help="also each step with trainer.compile=true (torch.compile), side by side")
    s.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the recipe")


def run(args: argparse.Namespace) -> int:
    from synco.engine.cpu_memory import keep_freed_cpu_memory

    reuse = not args.malloc_defaults and keep_freed_cpu_memory()
    malloc = "malloc reuses freed blocks" if reuse else "malloc defaults"
    if args.bench == "heads":
        from synco.bench.heads import HeadSetting, run_heads

        setting = HeadSetting(args.batch, args.queue, args.dim, args.num_hard, tuple(args.counts),
                              dtype=args.dtype, device=args.device, repeats=args.repeats, compile=args.compile)
        rows = run_heads(setting)
        print(f"negative head, forward + backward: B={setting.batch} K={setting.queue} D={setting.dim} "
              f"N={setting.num_hard} counts={setting.counts} {setting.dtype}; {_machine(setting.device)}, {malloc}; "
              f"medians of {setting.repeats} rounds in alternation; ratios: median of per-round ratios")
        columns = [("head", "head", ""), ("synthetic", "S", "d"), ("ms", "ms", ".1f"), ("time_ratio", "/ MoCo-v2", ".2f")]
        if args.compile:
            columns += [("same_mode_ratio", "/ same-mode MoCo-v2", ".2f"), ("speedup", "eager / this", ".2f")]
        _print_table(rows, columns + [("peak_mib", "peak MiB", ".1f"), ("memory_ratio", "/ MoCo-v2", ".2f")])
        if args.profile:
            from synco.bench.heads import profile_heads

            rows = profile_heads(setting)
            for row in rows:
                row["extra"] = row["SynCo"] - row["MoCo-v2"]
            print("\nself time per call by operator (PyTorch profiler, 5 calls each), largest SynCo excess first:")
            _print_table([r for r in rows if max(r["MoCo-v2"], r["SynCo"]) >= 0.05][:25],
                         [("op", "operator", ""), ("MoCo-v2", "MoCo-v2 ms", ".2f"), ("SynCo", "SynCo ms", ".2f"),
                          ("extra", "extra ms", ".2f")])
        return 0
    if args.bench == "losses":
        from synco.bench.losses import loss_rows, queue_step_rows

        in_batch, queued = loss_rows(args.batch, args.dim, args.queue, repeats=args.repeats)
        print(f"losses, forward + backward: B={args.batch} D={args.dim} (two views), 10 classes, float32; "
              f"{_machine('cpu')}, {malloc}; medians of {args.repeats} rounds in alternation")
        columns = [("loss", "loss", ""), ("ms", "ms", ".2f"), ("time_ratio", "/ first row", ".2f"),
                   ("peak_mib", "peak MiB", ".1f"), ("memory_ratio", "/ first row", ".2f")]
        _print_table(in_batch, columns)
        print(f"\nwith a queue of K={args.queue} (+ the batch's keys):")
        _print_table(queued, columns)
        steps, setting = queue_step_rows(args.recipe, repeats=args.repeats)
        print(f"\nthe label-aware queue in a whole training step: {setting}")
        _print_table(steps, [("step", "step", ""), ("ms", "ms", ".1f"), ("time_ratio", "ratio", ".3f"),
                             ("against", "against", "")])
        return 0
    if args.bench == "continual":
        from synco.bench.continual import continual_step_rows

        rows, setting = continual_step_rows(args.recipe, args.repeats, args.overrides, args.device)
        print(f"continual training step: {setting}; {_machine(args.device)}, {malloc}; medians of {args.repeats} "
              "rounds in alternation; ratios: median of per-round ratios")
        _print_table(rows, [("step", "step", ""), ("method", "built as", ""), ("ms", "ms", ".1f"),
                            ("images_per_s", "images/s", ".0f"), ("time_ratio", "/ MoCo-v2+", ".3f"), ("peak_mib", "peak MiB", ".1f"),
                            ("memory_ratio", "/ MoCo-v2+", ".2f")])
        return 0
    if args.bench == "pipeline":
        from synco.bench.pipeline import run_pipeline

        result = run_pipeline(args.root, args.image_size, args.images, args.workers, args.batch)
        print(f"input pipeline from files: {result['source']}, crops of {args.image_size} px, batch {args.batch}; "
              f"{_machine('cpu')}; one pass each, first batch (worker start-up) not timed")
        _print_table(result["rows"], [("pipeline", "pipeline", ""), ("images_per_s", "images/s", ".0f")])
        return 0
    if args.bench == "analysis":
        from synco.bench.analysis import run_analysis_cost

        r = run_analysis_cost(args.recipes, args.repeats, args.every)
        print(f"SynCo step {r['plain_ms']:.1f} ms, with the statistics observed {r['observed_ms']:.1f} ms "
              f"(+{r['extra_ms']:.1f} ms); observed every {r['every']} steps: {r['share_percent']:.2f} % of training "
              f"time; {_machine('cpu')}, {malloc}, medians of {args.repeats} rounds")
        return 0
    from synco.bench.steps import run_steps

    result = run_steps(args.recipes, args.repeats, args.overrides, args.pattern, args.synthetic, args.device, args.batch,
                       args.compile)
    print(f"training step: {result['setting']}; {_machine(args.device)}, {malloc}; medians of {args.repeats} rounds in alternation; ratios: median of per-round ratios")
    columns = [("step", "step", ""), ("ms", "ms", ".1f"), ("images_per_s", "images/s", ".0f"),
               ("time_ratio", "/ MoCo-v2", ".3f")]
    if args.compile:
        columns += [("same_mode_ratio", "/ same-mode MoCo-v2", ".3f"), ("speedup", "eager / this", ".2f")]
    _print_table(result["steps"], columns + [("peak_mib", "peak MiB", ".1f"), ("memory_ratio", "/ MoCo-v2", ".2f")])
    if args.compile:
        print(f"compile warm-up (first two calls of every compiled step, untimed above): {result['warmup_s']:.0f} s")
    for label, ratio in result.get("synthesis_cost", {}).items():
        print(f"synthesis cost: {label} step / its plain method's step = {ratio:.3f} (median of per-round ratios)")
    if not result["pipeline"]:
        return 0
    print()
    _print_table(result["pipeline"], [("pipeline", "input pipeline", ""), ("ms", "ms", ".1f"),
                                      ("images_per_s", "images/s", ".0f"),
                                      ("speed_vs_synco_step", "x SynCo step", ".2f")])
    return 0
