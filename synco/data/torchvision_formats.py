"""CIFAR-100 and STL-10 in the on-disk formats torchvision downloads.

- CIFAR-100: ``ROOT/cifar-100-python/{train,test,meta}``, read by ``torchvision.datasets.CIFAR100``
  (with its integrity check), held in memory (60k images of 32 pixels, 180 MB).
- STL-10: ``ROOT/stl10_binary/{train,test,unlabeled}_X.bin`` and ``*_y.bin``. The unlabeled split
  (100,000 images of 96 pixels, 2.7 GB) is memory-mapped rather than read, so pretraining on it
  touches only the images of each batch; torchvision's own loader reads the whole file and hashes it.
  Pretraining uses ``unlabeled`` (or ``train+unlabeled``, which is copied into memory); kNN and the
  other protocols use the labelled ``train`` (5,000) and ``test`` (8,000) splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synco.data.datasets import DatasetNotFoundError, ImageData

STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
STL10_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")


def load_cifar100(root: str | None, train: bool, download: bool = False) -> ImageData:
    import torchvision

    if not root:
        raise DatasetNotFoundError("data.root must name the folder holding cifar-100-python/ for dataset=cifar100")
    if not download and not (Path(root) / "cifar-100-python").is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-100 not found: {Path(root) / 'cifar-100-python'} does not exist (torchvision's format; "
            "data.download=true fetches it where there is internet)"
        )
    try:
        ds = torchvision.datasets.CIFAR100(root, train=train, download=download)
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        raise DatasetNotFoundError(f"CIFAR-100 in {root}: {err}") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    return ImageData(images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes))


def _stl10_images(path: Path) -> torch.Tensor:
    """(N, 3, 96, 96) uint8 view of an ``*_X.bin`` file (memory-mapped, read lazily)."""
    size = path.stat().st_size
    if size % (3 * 96 * 96) != 0:
        raise ValueError(f"{path} is not an STL-10 image file: {size} bytes is not a multiple of 3 x 96 x 96")
    # Copy-on-write mapping: writable for torch, the file is never touched.
    raw = np.memmap(path, dtype=np.uint8, mode="c", shape=(size // (3 * 96 * 96), 3, 96, 96))
    # Stored column-major per channel (torchvision transposes them too); a strided view, no copy.
    return torch.from_numpy(np.asarray(raw.transpose(0, 1, 3, 2)))


def _stl10_labels(path: Path, count: int) -> torch.Tensor:
    labels = torch.from_numpy(np.fromfile(path, dtype=np.uint8).astype(np.int64)) - 1  # stored 1..10
    if labels.numel() != count:
        raise ValueError(f"{path} holds {labels.numel()} labels for {count} images")
    return labels


def load_stl10(root: str | None, split: str) -> ImageData:
    """One STL-10 split; ``unlabeled`` images get label -1."""
    if split not in STL10_SPLITS:
        raise ValueError(f"STL-10 split must be one of {STL10_SPLITS}, got {split!r}")
    folder = Path(root or "") / "stl10_binary"
    if not root or not folder.is_dir():
        raise DatasetNotFoundError(
            f"STL-10 not found: {folder} does not exist (torchvision's format: stl10_binary/*.bin)"
        )
    parts = []
    for name in split.split("+"):
        image_file = folder / f"{name}_X.bin"
        if not image_file.is_file():
            raise DatasetNotFoundError(f"STL-10 split {name}: {image_file} does not exist")
        images = _stl10_images(image_file)
        labels = (torch.full((images.shape[0],), -1, dtype=torch.long) if name == "unlabeled"
                  else _stl10_labels(folder / f"{name}_y.bin", images.shape[0]))
        parts.append((images, labels))
    if len(parts) == 1:
        return ImageData(parts[0][0], parts[0][1], STL10_CLASSES)
    return ImageData(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), STL10_CLASSES)
