"""Large image folders read from disk on access: ImageNet, ImageNet-100, any ``ROOT/SPLIT/<class>/<image>``.

Only the file list is held in memory; images are decoded when a DataLoader worker asks for them, so
ImageNet's 1.28 million training images cost a few hundred MB of paths, not 100+ GB of pixels.
ImageNet-100 is ImageNet restricted to the classes of a list file (``synco/recipes/data/imagenet100.txt``,
the 100 classes of CMC's ``imagenet100.txt`` used by MoCHI and SynCo).

Folder problems are reported before training starts (missing root or split, classes missing from
the list or from one split, empty class folders); an image that cannot be decoded is reported with
its path when it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synco.data.datasets import DatasetNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: ImageNet's channel statistics, used by MoCo and most ImageNet pretraining code.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMAGENET100_CLASS_LIST = str(Path(__file__).resolve().parents[1] / "recipes" / "data" / "imagenet100.txt")


class UnreadableImageError(ValueError):
    """An image file that exists but cannot be decoded."""


def read_class_list(path: str | Path) -> list[str]:
    """Class folder names, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"class list {path} does not exist")
    names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ValueError(f"class list {path} names a class twice")
    return names


class FolderData:
    """One split of a folder data set, listed but not loaded.

    Samples are ordered class-interleaved (the first image of every class, then the second, ...), so
    :meth:`head` gives class-balanced subsets, as with the in-memory data sets.

    Attributes:
        paths: image files, in sample order.
        labels: (N,) int64 class indices into ``classes``.
        classes: class folder names, sorted (or in the class list's order).
    """

    in_memory = False
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    channels = 3

    def __init__(self, paths: list[str], labels: torch.Tensor, classes: list[str]) -> None:
        self.paths, self.labels, self.classes = paths, labels, classes

    def __len__(self) -> int:
        return len(self.paths)

    def head(self, count: int | None) -> FolderData:
        if count is None:
            return self
        return FolderData(self.paths[:count], self.labels[:count], self.classes)

    def select(self, indices: torch.Tensor) -> FolderData:
        """The images at ``indices``."""
        return FolderData([self.paths[i] for i in indices.tolist()], self.labels[indices], self.classes)

    def load(self, index: int) -> torch.Tensor:
        """The image as uint8 (3, H, W), decoded by Pillow (JPEG, PNG, WebP, BMP, TIFF, ...)."""
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
        except OSError as err:  # PIL.UnidentifiedImageError is an OSError too
            raise UnreadableImageError(f"cannot read image {path}: {err}") from None


def _list_split(folder: Path, classes: list[str] | None) -> tuple[list[str], dict[str, list[str]]]:
    if not folder.is_dir():
        raise DatasetNotFoundError(f"split folder {folder} does not exist (want ROOT/SPLIT/<class>/<image>)")
    present = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if classes is None:
        classes = present
        if not classes:
            raise DatasetNotFoundError(f"{folder} has no class sub-folders (want {folder}/<class>/<image>)")
    else:
        missing = [c for c in classes if c not in set(present)]
        if missing:
            raise DatasetNotFoundError(
                f"{folder} lacks {len(missing)} of the listed classes, e.g. {', '.join(missing[:5])}"
            )
    files: dict[str, list[str]] = {}
    for name in classes:
        class_dir = folder / name
        images = sorted(
            entry.path for entry in os.scandir(class_dir)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not images:
            raise ValueError(f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files[name] = images
    return classes, files


def load_folder_split(root: str | None, split: str, class_list: str | None = None, reference_classes=None) -> FolderData:
    """List ``ROOT/split/<class>/*``.

    Args:
        root: the data set's root folder.
        split: sub-folder name (``train``, ``val``).
        class_list: optional file restricting and ordering the classes (ImageNet-100).
        reference_classes: the training split's classes; this split must have the same.

    Raises:
        DatasetNotFoundError: missing root, split or listed classes.
        ValueError: empty class folders, or classes that differ from ``reference_classes``.
    """
    if not root:
        raise DatasetNotFoundError("data.root must name the data set's folder (ROOT/train/<class>/<image>)")
    if not Path(root).is_dir():
        raise DatasetNotFoundError(f"data.root {root} does not exist")
    classes = read_class_list(class_list) if class_list else None
    classes, files = _list_split(Path(root) / split, classes)
    if reference_classes is not None and list(reference_classes) != list(classes):
        only_train = sorted(set(reference_classes) - set(classes))
        only_here = sorted(set(classes) - set(reference_classes))
        raise ValueError(
            f"the classes of {Path(root) / split} differ from the training split's: "
            f"missing here {only_train[:5]}, extra here {only_here[:5]}"
        )
    paths, labels = [], []
    longest = max(len(v) for v in files.values())
    for position in range(longest):  # class-interleaved order
        for label, name in enumerate(classes):
            if position < len(files[name]):
                paths.append(files[name][position])
                labels.append(label)
    return FolderData(paths, torch.tensor(labels, dtype=torch.long), classes)
