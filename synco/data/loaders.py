"""Torch datasets over in-memory uint8 images."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from synco.data.datasets import ImageData


class ViewsDataset(Dataset):
    """Yields ``(view_q, view_k, index)`` for pretraining; index identifies the image."""

    def __init__(self, data: ImageData, two_views) -> None:
        self.data = data
        self.two_views = two_views

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        view_q, view_k = self.two_views(self.data.images[index])
        return view_q, view_k, index


class LabelledDataset(Dataset):
    """Yields ``(image, label)`` through a deterministic transform, for evaluation."""

    def __init__(self, data: ImageData, transform) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.transform(self.data.images[index]), self.data.labels[index]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units of uint8 images (N, C, H, W), from up to 10k images."""
    sample = images[:10000].float() / 255
    return sample.mean(dim=(0, 2, 3)).tolist(), sample.std(dim=(0, 2, 3)).tolist()
