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

from synco.errors import first_line
from synco.models.state import state_mismatch  # noqa: F401 (part of this module's interface)

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
    """Load a SynCo checkpoint on the CPU with ``weights_only=True`` (a checkpoint never runs code).

    Raises:
        CheckpointError: if the file is missing, empty, corrupt, holds Python objects (which could run
            code), or is not a SynCo checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was not written by synco, whose writes "
                              "are atomic; remove it, or restore the file it replaced")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(
                f"{path} is not a plain weights checkpoint: it holds Python objects, which could run code when "
                "loaded, so it is refused (synco checkpoints hold only tensors, numbers and strings)"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt ({first_line(err)})") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or not a PyTorch checkpoint ({first_line(err)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path} is not a SynCo checkpoint (expected format {FORMAT!r}"
                              + (f", found {found!r})" if found else ")"))
    return state


#: What the evaluation protocols read of a checkpoint (``synco.runs.load_run``, ``frozen_encoder``, the recorded epoch).
EVALUATION_KEYS = ("format", "model", "config", "normalisation", "epoch", "step")


def write_weights_only(source: str | Path, target: str | Path) -> Path:
    """Copy of checkpoint ``source`` holding only ``EVALUATION_KEYS`` (no optimizer, scheduler or RNG states).

    The copy evaluates and fine-tunes exactly like ``source`` but cannot resume training: a smaller file that pins
    one encoder for experiments spanning machines (each machine would otherwise train its own, slightly
    different one). Written to ``TARGET.tmp`` and renamed, like every checkpoint.

    Raises:
        CheckpointError: ``source`` is not a readable SynCo checkpoint.
    """
    state = load_checkpoint(source)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.save({k: state[k] for k in EVALUATION_KEYS if k in state}, tmp)
    os.replace(tmp, target)
    return target


#: The settings that decide a checkpoint's tensors; a difference in them is named in mismatch messages.
ARCHITECTURE_KEYS = ("method.name", "model.backbone", "model.embedding_dim", "model.mlp", "model.small_stem",
                     "method.queue_size")


def setting_differences(saved_yaml: str | None, cfg, keys=ARCHITECTURE_KEYS, here: str = "here") -> list[str]:
    """``key=saved in the checkpoint, now here`` for each of ``keys`` that differs between the checkpoint's
    saved configuration and ``cfg``."""
    from omegaconf import OmegaConf

    if not saved_yaml:
        return []
    saved = OmegaConf.create(saved_yaml)
    out = []
    for key in keys:
        before, now = OmegaConf.select(saved, key, default=None), OmegaConf.select(cfg, key, default=None)
        if before != now:
            out.append(f"{key}={before} in the checkpoint, {now} {here}")
    return out
