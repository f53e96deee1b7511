"""Turning exceptions into the one line a user reads."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def ensure_writable_dir(path, what: str) -> None:
    """Create ``path`` (a folder, with its parents) and check that a file can be written in it.

    Raises:
        OutputError: naming ``what`` (e.g. "run_dir") and the reason, before any long work starts.
    """
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".synco-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or first_line(err)
        where = f" ({err.filename})" if getattr(err, "filename", None) and str(err.filename) != str(path) else ""
        raise OutputError(f"cannot write {what} {path}: {reason}{where}; choose a writable place") from None


class OutputError(ValueError):
    """A place a command must write to cannot be written (read-only, a file in the way, no space)."""
