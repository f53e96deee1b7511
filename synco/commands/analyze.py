"""``synco analyze RUN``: the paper's analyses recomputed on a run's checkpoint, against its saved queue."""

from __future__ import annotations

from synco.commands.common import add_run_arguments, guarded


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="the paper's analyses on a run's checkpoint (proxy task, hardness, "
                       "strategies, false negatives, align/uniform, rank, class concentration)")
    add_run_arguments(p, "KEY=VALUE, e.g. eval.analysis_images=5000")
    p.add_argument("--batches", type=int, default=10, help="training batches observed against the queue")
    p.add_argument("--seed", type=int, default=0, help="images, augmentations and synthetic draws")


def run(args) -> int:
    from synco.analysis.run import run_analysis

    r = guarded(run_analysis, args.target, args.recipe, args.overrides, args.device, args.batches, args.seed)
    if r is None:
        return 2
    print(f"analyses of epoch {r['checkpoint_epoch']} ({r['analysis/batches']} batches against the saved queue, "
          f"synthesis {'on' if r['analysis/synthesized'] else 'off'}), appended to {args.target}/analysis/metrics.jsonl:")
    for key, value in r.items():
        if key.startswith("analysis/") and isinstance(value, float):
            print(f"  {key[9:]:<34}{value:.4f}")
    return 0
