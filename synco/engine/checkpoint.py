"""Checkpoints: written atomically through Lightning Fabric, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers and strings (no pickled objects), so it loads with
``torch.load(path, weights_only=True)`` anywhere. It is written to ``NAME.tmp`` and renamed over
``NAME``, so a crash mid-write never leaves half a checkpoint in place of the last good one.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "synco-checkpoint-v2"  # v2: RNG states of every rank


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or is not a SynCo checkpoint."""


def save_checkpoint(fabric, path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) to ``path`` atomically; rank 0 writes, all ranks wait."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if fabric.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
    fabric.save(tmp, {"format": FORMAT, **state})
    fabric.barrier()
    if fabric.is_global_zero:
        os.replace(tmp, path)
    fabric.barrier()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a SynCo checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, corrupt, or not a SynCo checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or not a PyTorch checkpoint ({str(err).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a SynCo checkpoint (expected format {FORMAT!r})")
    return state
