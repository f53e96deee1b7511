"""What the subcommands share: the user-error guard and the rank check."""

from __future__ import annotations

import sys
from collections.abc import Callable

from synco.config import ConfigError
from synco.engine.checkpoint import CheckpointError

#: What the protocol and export commands report as a user error (exit code 2) rather than a traceback.
USER_ERRORS = (CheckpointError, ConfigError, FileExistsError, FileNotFoundError, ValueError)


def guarded(call, *arguments):
    """``call(*arguments)``, or None after printing a user error (the caller then exits with 2)."""
    try:
        return call(*arguments)
    except USER_ERRORS as err:
        print(f"synco: error: {err}", file=sys.stderr)
        return None


def other_rank() -> bool:
    """True in every process but rank 0 of a multi-process run: one summary on the console is enough."""
    from synco.distributed import rank

    return rank() != 0


def run_protocol(call, args, summary) -> int:
    """Run a protocol on a finished run (``call(target, recipe, overrides, device)``) as a command: exit 2
    after a user error, else rank 0 prints ``summary(result)`` and the exit code is 0."""
    result = guarded(call, args.target, args.recipe, args.overrides, args.device)
    if result is None:
        return 2
    if not other_rank():
        print(summary(result))
    return 0


def add_run_arguments(parser, overrides_help: str) -> None:
    """The arguments every command on a finished run takes: target, overrides, --recipe, --device."""
    parser.add_argument("target", help="run directory or checkpoint file")
    parser.add_argument("overrides", nargs="*", help=overrides_help)
    parser.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    parser.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")


def load_recipe(args):
    """The validated configuration of ``args.config`` with ``args.overrides``, or None after printing the error."""
    from synco.config import load_config

    try:
        return load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"synco: configuration error: {err}", file=sys.stderr)
        return None


def run_training(call, interrupted: Callable[[], str]) -> tuple[object, int | None]:
    """``(call(), None)``, or ``(None, exit code)`` after printing one line: 130 on Ctrl-C (with
    ``interrupted()``, what the user can do, on rank 0), 2 for a user error, 3 for a non-finite loss."""
    from synco.engine.pretrain import NonFiniteLossError

    try:
        return call(), None
    except KeyboardInterrupt:
        if not other_rank():
            print(f"\nsynco: interrupted. {interrupted()}", file=sys.stderr)
        return None, 130
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"synco: error: {err}", file=sys.stderr)
        return None, 2
    except NonFiniteLossError as err:
        print(f"synco: training stopped: {err}", file=sys.stderr)
        return None, 3
