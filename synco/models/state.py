"""Whether a saved state dict fits a module, in one line (checkpoints, initial weights of a continual task)."""

from __future__ import annotations

import torch


def state_mismatch(module: torch.nn.Module, saved: dict[str, torch.Tensor]) -> str | None:
    """What keeps ``saved`` from loading into ``module``: missing, unexpected and reshaped tensors, or None."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    reshaped = [k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)]
    parts = []
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} tensor(s) of another shape (e.g. {k}: checkpoint {tuple(saved[k].shape)}, "
                     f"this run {tuple(expected[k].shape)})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return "; ".join(parts) or None
