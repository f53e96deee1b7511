"""Command line: ``synco pretrain|knn|linear|finetune|analyze|export|report|bench``.

This file only parses and dispatches; each subcommand lives in ``synco/commands/<name>.py``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from synco.commands import COMMANDS


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("synco")
    except PackageNotFoundError:
        from synco import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synco", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--version", action="version", version=f"synco {version()}")
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
    try:
        return importlib.import_module(f"synco.commands.{args.command}").run(args)
    except KeyboardInterrupt:  # commands that can say more (pretrain: how to resume) catch it themselves
        print("\nsynco: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a read-only place: the environment, not a bug of the command
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        print(f"synco: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Destroy the process group a multi-process command joined, as torch.distributed asks before exit.

    (This alone did not stop a rare abort of a gloo worker during the interpreter's teardown, seen about once
    in 20-40 runs of the two-process test workers; those now end with ``os._exit`` after writing.)"""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
