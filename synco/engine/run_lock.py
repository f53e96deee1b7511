"""One writer per run directory: ``RUN/.synco.lock``, held with ``flock`` while a process writes the run.

The lock file names its holder (host, process id, start time, command). ``flock`` is released by the
kernel when its holder dies, however it dies (SIGKILL, out of memory, a lost node on NFS, where Linux maps
``flock`` to NFS locks), so a second writer is refused only while the first is alive, and a lock left by a
dead process is taken over with one line naming it. The processes of one distributed run count as one
writer: rank 0 holds the lock (``hold_run_lock``). Readers (``knn``, ``linear``, ``analyze``, ``report``,
``export``) take no lock: they read the last complete checkpoint, which is replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from synco.errors import OutputError, ensure_writable_dir

log = logging.getLogger(__name__)

LOCK_NAME = ".synco.lock"


class RunLockedError(ValueError):
    """Another live process writes this run directory."""


def _holder_text(info: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"])) if "started" in info else "?"
    return (f"process {info.get('pid', '?')} on host {info.get('host', '?')} (started {started}: "
            f"{info.get('command', '?')})")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode(errors="replace").strip()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"command": text[:200]}


class RunLock:
    """The write lock of one run directory; ``acquire`` then ``release`` (or use :func:`hold_run_lock`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the live holder; a stale lock is taken over with one warning line.

        Raises:
            RunLockedError: another live process holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    holder = _read(fd)
                    os.close(fd)
                    raise RunLockedError(
                        f"run_dir {self.path.parent} is being written by {_holder_text(holder)}; wait for it to "
                        "end or choose another run_dir (readers such as synco knn need no lock)") from None
                os.close(fd)  # a file system without locks (some parallel file systems mount without them)
                log.warning("cannot lock %s (%s): this file system has no file locks, so a second writer of "
                            "this run directory would not be refused", self.path, err.strerror)
                return
            # The holder before us may have removed the file between our open and our lock: lock the file
            # that is at the path now, or two writers would each hold a lock on a different file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(fd)
        if previous:
            log.warning("run_dir %s: taking over the lock left by %s, which is no longer running",
                        self.path.parent, _holder_text(previous))
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(["synco", *sys.argv[1:]]) if sys.argv else "synco"}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(mine) + "\n").encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file, then let go of the lock (a waiting writer re-checks the path, see acquire)."""
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


@contextlib.contextmanager
def hold_run_lock(fabric, run_dir: str | Path):
    """Hold ``run_dir``'s write lock for the block: rank 0 takes it and every rank raises its refusal.

    The directory is created first (with a one-line ``OutputError`` where it cannot be written).

    Raises:
        RunLockedError: on every rank, when another live process writes ``run_dir``.
        OutputError: on every rank, when ``run_dir`` cannot be written.
    """
    lock = RunLock(run_dir)
    refusal = None
    if fabric.is_global_zero:
        try:
            ensure_writable_dir(run_dir, "run_dir")
            lock.acquire()
        except (RunLockedError, OutputError) as err:
            refusal = (type(err).__name__, str(err))
    if fabric.world_size > 1:
        refusal = fabric.broadcast(refusal, src=0)
    if refusal is not None:
        kind, message = refusal
        raise (RunLockedError if kind == "RunLockedError" else OutputError)(message)
    try:
        yield lock
    finally:
        lock.release()
