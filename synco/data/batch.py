"""``Batch``: what the training loop hands every method, whatever the method or the data set.

Shapes: V views of b images each (b = global batch / processes), C channels, H x W pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """One process's share of a training batch.

    Attributes:
        views: V augmented views, each (b, C, H, W); two for every method here.
        index: (b,) int64 dataset indices of the images (for same-image masking and the analyses).
        labels: (b,) int64 class labels when the data set has them, else None. Self-supervised methods
            ignore them; -1 marks an unlabelled image (STL-10's unlabeled split).
    """

    views: tuple[torch.Tensor, ...]
    index: torch.Tensor
    labels: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """b, the number of images on this process."""
        return self.index.shape[0]
