"""``synco linear RUN``: linear probe on the frozen encoder of a run, over seeds."""

from __future__ import annotations

import sys

from synco.commands.common import add_run_arguments, run_protocol


def add_parser(sub) -> None:
    p = sub.add_parser("linear", help="linear probe on the frozen encoder of a run (top-1/top-5, seeds)")
    add_run_arguments(p, "KEY=VALUE, e.g. linear.epochs=100 'linear.seeds=[0,1,2]'")


def run(args) -> int:
    from synco.eval.protocols.linear import BackboneChangedError, run_linear

    try:
        return run_protocol(run_linear, args, lambda s: (
            f"linear probe ({s['linear/epochs']} epochs, lr {s['linear/lr']}, {s['linear/feature']} features, "
            f"augment={s['linear/augment']}) over seeds {s['linear/seeds']}:\n"
            f"top-1 {s['linear/top1_mean']:.2f} +- {s['linear/top1_std']:.2f} %, "
            f"top-5 {s['linear/top5_mean']:.2f} +- {s['linear/top5_std']:.2f} %"))
    except BackboneChangedError as err:  # MoCo's sanity check: its own exit code
        print(f"synco: {err}", file=sys.stderr)
        return 4
