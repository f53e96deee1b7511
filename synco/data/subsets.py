"""Deterministic, class-balanced labelled subsets for semi-supervised fine-tuning (1 % / 10 % of labels).

A subset is a list of sample names written to a text file, one per line, so that it is reused
exactly by later runs and can be read by other code: for data sets held in memory the name is the
sample's index in the split, for folders the image file's name (``n01440764_10026.JPEG``), which is also
the format of the canonical ImageNet lists (SimCLR's ``1percent.txt`` / ``10percent.txt``) that can be
given instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of ``round(fraction * n_c)`` (at least 1) samples of every class c, drawn with ``seed``.

    Args:
        labels: (N,) int64 class indices.
        fraction: in (0, 1].

    Returns:
        (M,) int64 indices, sorted.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().squeeze(1)  # (n_c,)
        take = max(1, round(fraction * members.numel()))
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:take]])
    return torch.cat(chosen).sort().values


def shot_subset(labels: torch.Tensor, shots: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``shots`` samples of every class (k-shot), drawn with ``seed``.

    Raises:
        ValueError: ``shots`` < 1, or larger than the smallest class (naming it and its size).
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    classes, counts = torch.unique(labels, return_counts=True)
    smallest = int(counts.argmin())
    if shots > int(counts[smallest]):
        raise ValueError(f"finetune.shots={shots} is larger than the smallest class (class {int(classes[smallest])} "
                         f"has {int(counts[smallest])} labelled images)")
    g = torch.Generator().manual_seed(seed)
    chosen = [members[torch.randperm(members.numel(), generator=g)[:shots]]
              for members in ((labels == c).nonzero().squeeze(1) for c in classes.tolist())]
    return torch.cat(chosen).sort().values


def sample_names(data) -> list[str]:
    """How a split's samples are named in subset files: file names for folders, indices otherwise."""
    if getattr(data, "in_memory", True):
        return [str(i) for i in range(len(data))]
    return [os.path.basename(p) for p in data.paths]


def write_subset(path: str | Path, names: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(names) + "\n")
    os.replace(tmp, path)


def read_subset(path: str | Path, data) -> torch.Tensor:
    """Indices into ``data`` of the names listed in ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: names that the split does not contain (the first few are quoted).
    """
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    position = {name: i for i, name in enumerate(sample_names(data))}
    missing = [n for n in names if n not in position]
    if missing:
        raise ValueError(f"subset file {path} names {len(missing)} samples not in the split, e.g. {missing[:3]}")
    return torch.tensor(sorted(position[n] for n in names), dtype=torch.long)
