"""A process of a distributed run that dies or stalls: which rank it was, in one line instead of a traceback.

When a rank dies, the others fail in their next collective operation (gloo: "Connection closed by
peer"; NCCL: an error or the watchdog's timeout); when a rank stalls, they fail after
``trainer.collective_timeout`` seconds. :func:`register_processes` records every rank's host and process
id at start-up, so that the surviving rank 0 can name the rank whose process is gone (on its own host;
a rank on another host is named only as unreachable). The command line prints that with the last
checkpoint and the resume command (``synco.commands.common.run_training``).
"""

from __future__ import annotations

import os
import socket
import time

import torch

_PROCESSES: list[tuple[str, int]] = []  # (host, pid) of every rank, in rank order
_TIMEOUT: list[int] = []


def register_processes(fabric, timeout: int) -> None:
    """Record every rank's (host, process id) and the collective timeout (collective: every rank calls it)."""
    mine = (socket.gethostname(), os.getpid())
    everyone: list = [None] * fabric.world_size
    if fabric.world_size > 1:
        torch.distributed.all_gather_object(everyone, mine)
    else:
        everyone = [mine]
    _PROCESSES[:] = everyone
    _TIMEOUT[:] = [timeout]


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective operation that failed because another rank died or stalled."""
    if not _PROCESSES or len(_PROCESSES) < 2:
        return False
    if isinstance(err, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        mark in text for mark in ("connection closed by peer", "connection reset by peer", "timed out", "timeout",
                                  "broken pipe", "nccl", "gloo"))


def _gone(pid: int) -> bool:
    """True when process ``pid`` of this host has ended (a zombie not yet reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _dead_ranks(host: str, me: int, wait: float) -> list[tuple[int, int]]:
    """The (rank, pid) of this host's other ranks whose processes have ended, looking for up to ``wait`` s.

    Why wait: a killed process closes its sockets early in its exit, before the kernel marks it ended, so the
    surviving rank can see the closed connection while the dying one still looks alive.
    """
    deadline = time.monotonic() + wait
    while True:
        dead = [(rank, pid) for rank, (where, pid) in enumerate(_PROCESSES)
                if where == host and pid != me and _gone(pid)]
        if dead or time.monotonic() >= deadline:
            return dead
        time.sleep(0.05)


def describe_failure(err: BaseException, wait: float = 2.0) -> str:
    """What happened, in words: the ranks whose processes are gone, or a timeout, or an unreachable rank."""
    host = socket.gethostname()
    dead = _dead_ranks(host, os.getpid(), wait)
    if dead:
        names = ", ".join(f"rank {rank} (process {pid} on {host})" for rank, pid in dead)
        return f"{names} stopped, so the distributed run cannot go on"
    timeout = _TIMEOUT[0] if _TIMEOUT else None
    if "timed out" in str(err).lower() or "timeout" in str(err).lower():
        return (f"a collective operation waited longer than trainer.collective_timeout={timeout} s for another "
                "rank (stalled, or dead on another host)")
    return "another rank stopped or became unreachable, so the distributed run cannot go on"
