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


def add_recipe_arguments(parser, example: str, overrides_example: str, resume_help: str) -> None:
    """The arguments of the commands that train from a recipe: recipe, overrides, --resume, --device."""
    parser.add_argument("recipe", help=f"YAML recipe, e.g. {example}")
    parser.add_argument("overrides", nargs="*", help=f"KEY=VALUE overrides with dotted keys, e.g. {overrides_example}")
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--device", default=None,
                        help="sets trainer.accelerator (cpu, cuda, mps, auto); default: the recipe's")


def add_run_arguments(parser, overrides_help: str) -> None:
    """The arguments every command on a finished run takes: target, overrides, --recipe, --device."""
    parser.add_argument("target", help="run directory or checkpoint file")
    parser.add_argument("overrides", nargs="*", help=overrides_help)
    parser.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    parser.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")


def load_recipe(args):
    """The validated configuration of ``args.recipe`` with ``args.overrides`` (and ``--device``, which sets
    ``trainer.accelerator``), or None after printing the error."""
    from synco.config import load_config

    try:
        device = getattr(args, "device", None)
        accelerator = [f"trainer.accelerator={'cuda' if device == 'gpu' else device}"] if device else []
        return load_config(args.recipe, [*args.overrides, *accelerator])
    except ConfigError as err:
        print(f"synco: configuration error: {err}", file=sys.stderr)
        return None


def run_training(call, interrupted: Callable[[], str], requeue: bool = False) -> tuple[object, int | None]:
    """``(call(), None)``, or ``(None, exit code)`` after printing one line on rank 0 (``interrupted()`` says
    where the run stands and the command that continues it).

    Exit codes: 2 a user error, 3 a non-finite loss, 4 another rank of a distributed run died or stalled,
    128 + N a stop signal N (SIGINT 130, SIGTERM 143, SIGUSR1 138): training stopped after its current step
    and wrote a checkpoint that ``--resume`` continues exactly. With ``requeue`` (``trainer.requeue``) a SLURM
    job is requeued after a stop signal, so it continues by itself.
    """
    from synco.pipelines.pretrain import NonFiniteLossError
    from synco.engine.rank_faults import describe_failure, is_collective_failure
    from synco.engine.stop_signals import STOP, SignalReceived, TrainingStopped

    def say(text: str) -> None:
        if not other_rank():
            print(text, file=sys.stderr, flush=True)

    try:
        with STOP.install():
            return call(), None
    except TrainingStopped as stop:
        requeued = _requeue_slurm_job() if requeue and not other_rank() else ""
        say(f"synco: {stop}. {interrupted()}{requeued}")
        return None, stop.exit_code
    except KeyboardInterrupt:
        say(f"\nsynco: interrupted. {interrupted()}")
        return None, 130
    except SignalReceived as received:
        say(f"synco: stopped by {received}. {interrupted()}")
        return None, 128 + received.signum
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        say(f"synco: error: {err}")
        return None, 2
    except NonFiniteLossError as err:
        say(f"synco: training stopped: {err}")
        return None, 3
    except Exception as err:
        if not is_collective_failure(err):
            raise
        say(f"synco: error: {describe_failure(err)}. {interrupted()}")
        return None, 4


def _requeue_slurm_job() -> str:
    """``scontrol requeue`` this SLURM job (what Lightning's SLURM environment does at SIGUSR1); what it did."""
    import os
    import subprocess

    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job and "SLURM_ARRAY_TASK_ID" in os.environ else None
    job = job or os.environ.get("SLURM_JOB_ID")
    if not job:
        return " (trainer.requeue=true, but this is not a SLURM job: nothing was requeued)"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f" (scontrol requeue {job} failed: {err})"
    if done.returncode != 0:
        return f" (scontrol requeue {job} failed: {done.stderr.strip() or done.returncode})"
    return f" SLURM job {job} was requeued and will continue by itself."
