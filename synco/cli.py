"""Command line: ``synco pretrain|knn|linear|finetune|analyze|export|report|bench``.

This file only parses and dispatches; each subcommand lives in ``synco/commands/<name>.py``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from synco.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synco", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"synco.commands.{name}")
        module.add_parser(sub)
        sub.choices[name].add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                                       help="log warnings only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may come before or after the options (argparse alone would stop at --recipe).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or not all("=" in item and not item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    # Before any command runs, so that every command's INFO lines (knn, analyze, finetune too) are shown.
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return importlib.import_module(f"synco.commands.{args.command}").run(args)


if __name__ == "__main__":
    sys.exit(main())
