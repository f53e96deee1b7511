"""Torch datasets over a split (in memory or read from disk, anything with ``load(i)`` and ``labels``)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class ViewsDataset(Dataset):
    """Yields ``(view_1, ..., view_V, index)`` for pretraining; index identifies the image.

    ``views(image)`` returns the V views (``TwoViews``, ``MultiViews``).
    """

    def __init__(self, data, views) -> None:
        self.data = data
        self.views = views

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return (*self.views(self.data.load(index)), index)


class LabelledDataset(Dataset):
    """Yields ``(image, label)`` through a deterministic transform, for evaluation."""

    def __init__(self, data, transform) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.transform(self.data.load(index)), self.data.labels[index]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units of uint8 images (N, C, H, W), from up to 10k images."""
    sample = images[:10000].float() / 255
    return sample.mean(dim=(0, 2, 3)).tolist(), sample.std(dim=(0, 2, 3)).tolist()


def normalisation(data) -> tuple[list[float], list[float]]:
    """Channel mean and std: measured on an in-memory split, ImageNet's for data read from disk."""
    if data.in_memory:
        return channel_stats(data.images)
    return list(data.mean), list(data.std)
