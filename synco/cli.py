"""Command line: ``synco pretrain|continual|knn|linear|finetune|analyze|export|report|bench|config``.

This file only parses and dispatches; each subcommand lives in ``synco/commands/<name>.py`` and is imported
only when it runs (``synco --help`` and ``synco --version`` import no command module, hence no PyTorch).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from synco.commands import COMMANDS, EXIT_CODES


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default and keeps the examples' and exit codes' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""  # no "(default: None)" noise on flags and optional values
        return super()._get_help_string(action)


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("synco")
    except PackageNotFoundError:
        from synco import __version__

        return __version__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, to add its arguments (the others are listed)."""
    parser = argparse.ArgumentParser(prog="synco", description="Contrastive representation learning with hard "
                                     "negatives: SynCo, MoCo-v2, MoCHI, SimCLR, HCL, SupCon, H-SCL, BYOL, SCHaNe "
                                     "fine-tuning and continual SSL.", epilog=EXIT_CODES,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--version", action="version", version=f"synco {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, example) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=summary)
            continue
        importlib.import_module(f"synco.commands.{name}").add_parser(sub)
        own = sub.choices[name]
        _show_defaults(own)
        own.epilog = f"example:\n  {example}\n\n{EXIT_CODES}"
        own.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="log warnings only")
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """``HelpFormatter`` for ``parser`` and every parser below it (``synco bench heads`` too)."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is one), or None."""
    return next((word for word in argv if word in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except BrokenPipeError:  # `synco config | head`: the reader has gone; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    parser = build_parser(_command_of(argv))
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
    except BrokenPipeError:
        raise
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
    if "torch" not in sys.modules:  # nothing joined a process group without importing torch
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
