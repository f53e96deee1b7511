"""FIFO queue of past keys (MoCo), row-major, with the image index and the class label of every row."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NegativeQueue(torch.nn.Module):
    """A (K, D) FIFO of unit keys with persistent buffers, so a resumed run sees the same negatives.

    Writes wrap around the end, so ``queue_size`` need not be a multiple of the batch size.
    Each row remembers the dataset index of the image it came from and that image's class label (-1 for
    the random initial rows, and for labels of unlabelled data), so that a query's own older keys, or
    keys of its class, can be masked: the label-aware queue that supervised losses with tens of
    thousands of negatives need (SupCon's "MoCo trick").

    Args:
        queue_size: K.
        dim: D.
        generator: seeds the random unit vectors the queue starts with (as in MoCo).
    """

    def __init__(self, queue_size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        keys = F.normalize(torch.randn(queue_size, dim, generator=generator), dim=1)  # (K, D)
        self.register_buffer("keys", keys)
        self.register_buffer("image_index", torch.full((queue_size,), -1, dtype=torch.long))  # (K,)
        self.register_buffer("labels", torch.full((queue_size,), -1, dtype=torch.long))  # (K,)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the queue stored labels: their rows' labels are unknown (-1).
        state_dict.setdefault(prefix + "labels", torch.full_like(self.labels, -1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, image_index: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> None:
        """Write ``keys`` (B, D), their images' indices and labels (B,) after the newest row, overwriting the
        oldest, wrapping at K; a missing index or label is stored as -1.

        If B > K only the last K keys are kept.
        """
        unknown = torch.full((keys.shape[0],), -1, dtype=torch.long, device=keys.device)
        image_index = unknown if image_index is None else image_index
        labels = unknown if labels is None else labels
        keys, image_index, labels = keys[-self.size :], image_index[-self.size :], labels[-self.size :]
        count = keys.shape[0]
        rows = (self.pointer + torch.arange(count, device=keys.device)) % self.size  # (B,)
        self.keys[rows] = keys.detach().to(self.keys.dtype)
        self.image_index[rows] = image_index.to(self.image_index.device)
        self.labels[rows] = labels.to(self.labels.device)
        self.pointer.copy_((self.pointer + count) % self.size)

    def same_image_mask(self, image_index: torch.Tensor) -> torch.Tensor:
        """(B, K) bool, True where a queue row holds a key of the query's own image."""
        return image_index.unsqueeze(1) == self.image_index.unsqueeze(0)  # (B, K)

    def same_class_mask(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, K) bool, True where a queue row holds a key of the query's class (rows of unknown class: False)."""
        return (labels.unsqueeze(1) == self.labels.unsqueeze(0)) & (self.labels >= 0).unsqueeze(0)  # (B, K)
