"""``synco linear RUN``: linear probe on the frozen encoder of a run, over seeds."""

from __future__ import annotations

import sys

from synco.commands.common import add_run_arguments, guarded, other_rank


def add_parser(sub) -> None:
    p = sub.add_parser("linear", help="linear probe on the frozen encoder of a run (top-1/top-5, seeds)")
    add_run_arguments(p, "KEY=VALUE, e.g. linear.epochs=100 'linear.seeds=[0,1,2]'")


def run(args) -> int:
    from synco.eval.protocols.linear import BackboneChangedError, run_linear

    try:
        summary = guarded(run_linear, args.target, args.recipe, args.overrides, args.device)
    except BackboneChangedError as err:
        print(f"synco: {err}", file=sys.stderr)
        return 4
    if summary is None:
        return 2
    if other_rank():
        return 0
    seeds = summary["linear/seeds"]
    print(f"linear probe ({summary['linear/epochs']} epochs, lr {summary['linear/lr']}, "
          f"{summary['linear/feature']} features, augment={summary['linear/augment']}) over seeds {seeds}:")
    print(f"top-1 {summary['linear/top1_mean']:.2f} +- {summary['linear/top1_std']:.2f} %, "
          f"top-5 {summary['linear/top5_mean']:.2f} +- {summary['linear/top5_std']:.2f} %")
    return 0
