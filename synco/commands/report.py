"""``synco report RUN [RUN ...] --out DIR``: figures and a Markdown page comparing runs side by side."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="figures and a Markdown page comparing runs side by side")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="output folder for report.md and the PNG figures")


def run(args) -> int:
    from synco.report import Run, write_report
    from synco.report.tables import warnings_for

    try:
        page = write_report(args.runs, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"synco: error: {err}", file=sys.stderr)
        return 2
    for warning in warnings_for([Run(path) for path in args.runs]):  # also at the top of report.md
        print(f"synco: warning: {warning}", file=sys.stderr)
    print(f"wrote {page} and its figures")
    return 0
