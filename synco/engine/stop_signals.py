"""Stopping on a signal without losing work: SIGTERM, SIGINT and SIGUSR1 end training at a step boundary.

SLURM sends SIGTERM at preemption and at the time limit (and SIGUSR1 ahead of it with ``--signal``),
``docker stop`` and Kubernetes send SIGTERM, Ctrl-C sends SIGINT. While the training loop runs
(:meth:`StopSignals.armed`), the handler only records the signal; the loop finishes the current step,
all ranks agree to stop at the same step (:meth:`StopSignals.agreed`), a checkpoint that resumes exactly
mid-epoch is written, and :class:`TrainingStopped` carries where it stopped to the command line, which
prints one line with the resume command and exits with 128 + the signal's number (143 for SIGTERM).

Outside the loop (data loading, evaluation), and at a second signal, nothing is mid-step: the handler
raises at once (``KeyboardInterrupt`` for SIGINT, :class:`SignalReceived` otherwise). The handlers are
installed by the commands that train (``synco pretrain``, ``synco continual``), not by the library.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from synco.distributed import rank

#: The signals that stop training gracefully (SIGUSR1: SLURM's ``--signal=USR1@<seconds>`` warning).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name))


class SignalReceived(BaseException):
    """A stop signal arrived where no step was running (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class TrainingStopped(Exception):
    """Training stopped at a signal after writing ``checkpoint``, from which ``--resume`` continues exactly.

    Attributes:
        signum: the signal (agreed by all ranks: the largest number received by any).
        checkpoint: the checkpoint written.
        epoch: epochs finished (0-based index of the epoch that was running, when ``epoch_step`` > 0).
        epoch_step: steps done inside that epoch (0: stopped at an epoch boundary).
    """

    signum: int
    checkpoint: Path
    epoch: int
    epoch_step: int

    def __str__(self) -> str:
        where = (f"epoch {self.epoch + 1}, step {self.epoch_step}" if self.epoch_step
                 else f"the end of epoch {self.epoch}")
        return f"stopped by {signal.Signals(self.signum).name} at {where}; checkpoint {self.checkpoint}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """The process's stop-signal state: installed handlers, whether a loop is armed, the signal received."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.is_armed = False
        self.installed = False

    def _handle(self, signum, frame) -> None:
        if self.is_armed and self.received is None:
            self.received = signum
            if rank() == 0:
                print(f"\nsynco: {signal.Signals(signum).name} received: finishing this step and writing a "
                      "checkpoint (send it again to stop at once)", file=sys.stderr, flush=True)
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SignalReceived(signum)

    @contextlib.contextmanager
    def install(self):
        """Handle the stop signals for the block (main thread only; elsewhere this does nothing). Signals that are
        ignored when the block starts stay ignored."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        # A signal ignored by whoever started us stays ignored (a shell's background jobs ignore SIGINT).
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS
                    if signal.getsignal(sig) is not signal.SIG_IGN}
        self.installed, self.received = True, None
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.installed = False

    @contextlib.contextmanager
    def armed(self):
        """Inside the training loop: a signal is recorded and the loop stops at the next step boundary."""
        self.is_armed = True
        try:
            yield self
        finally:
            self.is_armed = False

    def agreed(self, fabric) -> int | None:
        """The signal to stop on, the same on every rank (one all-reduce with several processes), or None.

        A rank may receive the signal a step later than another (or not at all, when only rank 0's
        launcher gets it); the maximum over ranks makes all of them stop after the same step.
        """
        local = self.received or 0
        if fabric.world_size > 1:
            flag = torch.tensor([local], device=fabric.device)
            local = int(fabric.all_reduce(flag, reduce_op="max").item())
        return local or None


#: The one instance of the process (signal handlers are per process).
STOP = StopSignals()
