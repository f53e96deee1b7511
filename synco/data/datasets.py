"""Labelled image datasets held in memory as uint8 tensors (N, C, H, W), and the dispatcher by name.

Sources held in memory (this file and ``torchvision_formats.py``):
- Fashion-MNIST: the four IDX ``.gz`` files, from Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``) or torchvision's layout (``ROOT/FashionMNIST/raw``).
- CIFAR-10: torchvision's layout (``ROOT/cifar-10-batches-py``) or the JPEG archives
  ``train.tar.gz`` / ``test.tar.gz`` (``train/<class>/NNNN.jpg``), decoded once and cached.
- Any image folder (``ROOT/<class>/<image>``, torchvision's ImageFolder), resized to a fixed size.
- CIFAR-100 and STL-10 (memory-mapped) in torchvision's formats.

Small data sets fit in memory as uint8, which makes augmentation the only per-step data cost. Large
ones (ImageNet, ImageNet-100) are listed and read from disk on access (``folders.py``).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
# The shared copy sits beside the repository: <repo>/../shared/datasets/cifar10-jpeg.
SHARED_CIFAR10_JPEG = str(Path(__file__).resolve().parents[3] / "shared" / "datasets" / "cifar10-jpeg")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says where they were looked for."""


@dataclass
class ImageData:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    in_memory = True  # as opposed to folders.FolderData, read from disk on access

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` as uint8 (C, H, W)."""
        return self.images[index]

    def head(self, count: int | None) -> ImageData:
        """The first ``count`` images (all when None)."""
        if count is None:
            return self
        return ImageData(self.images[:count], self.labels[:count], self.classes)


# --------------------------------------------------------------------------- Fashion-MNIST
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic not in (2049, 2051):
        raise ValueError(f"{path} is not an IDX label or image file (magic number {magic})")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_fashion_mnist(root: str | None) -> Path:
    candidates = []
    if root:
        candidates += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    candidates += [Path(DEBIAN_FASHION_MNIST)]
    for folder in candidates:
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
            if (folder / name).exists():
                return folder
    raise DatasetNotFoundError(
        "Fashion-MNIST not found. Looked in: "
        + ", ".join(str(c) for c in candidates)
        + ". Install Debian's package (apt-get install dataset-fashion-mnist, files in "
        f"{DEBIAN_FASHION_MNIST}) or put torchvision's files in ROOT/FashionMNIST/raw "
        "(torchvision.datasets.FashionMNIST(ROOT, download=True) where there is internet)."
    )


def load_fashion_mnist(root: str | None, train: bool, download: bool = False) -> ImageData:
    if download and root:
        import torchvision

        torchvision.datasets.FashionMNIST(root, train=train, download=True)  # writes ROOT/FashionMNIST/raw
    folder = _find_fashion_mnist(root)
    prefix = "train" if train else "t10k"

    def pick(kind: str) -> Path:
        gz = folder / f"{prefix}-{kind}.gz"
        return gz if gz.exists() else folder / f"{prefix}-{kind}"

    images = torch.from_numpy(_read_idx(pick("images-idx3-ubyte")).copy()).unsqueeze(1)  # (N, 1, 28, 28)
    labels = torch.from_numpy(_read_idx(pick("labels-idx1-ubyte")).astype(np.int64))  # (N,)
    return ImageData(images, labels, FASHION_MNIST_CLASSES)


# --------------------------------------------------------------------------- CIFAR-10
def _cifar_torchvision(root: Path, train: bool) -> ImageData:
    import torchvision

    ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    return ImageData(images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes))


def _cifar_jpeg(archive: Path, cache_dir: Path) -> ImageData:
    """Decode a JPEG archive once; cache the uint8 tensors beside a fingerprint of the archive.

    Images are ordered class-interleaved (image 0 of every class, then image 1, ...) so that the
    first n images of the split are class-balanced, as a prefix of the official order is.
    """
    from PIL import Image

    stat = archive.stat()
    cache = cache_dir / f"{archive.name}.{stat.st_size}.{int(stat.st_mtime)}.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        return ImageData(saved["images"], saved["labels"], CIFAR10_CLASSES)
    log.info("decoding %s (once; cached in %s)", archive, cache)
    per_class: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in CIFAR10_CLASSES}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            parts = Path(member.name).parts
            if len(parts) < 2 or parts[-2] not in per_class:
                raise ValueError(f"{archive}: unexpected member {member.name} (want SPLIT/<class>/<image>)")
            data = tar.extractfile(member).read()
            with Image.open(io.BytesIO(data)) as img:
                per_class[parts[-2]].append((parts[-1], np.asarray(img.convert("RGB"))))
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        per_class[name].sort(key=lambda item: item[0])
    longest = max(len(v) for v in per_class.values())
    for position in range(longest):
        for label, name in enumerate(CIFAR10_CLASSES):
            if position < len(per_class[name]):
                images.append(per_class[name][position][1])
                labels.append(label)
    if not images:
        raise ValueError(f"{archive} holds no images")
    result = ImageData(
        torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),  # (N, 3, 32, 32)
        torch.tensor(labels, dtype=torch.long),
        CIFAR10_CLASSES,
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save({"images": result.images, "labels": result.labels}, tmp)
    os.replace(tmp, cache)
    return result


def load_cifar10(root: str | None, train: bool, cache_dir: str, download: bool = False) -> ImageData:
    split = "train" if train else "test"
    if download and root:
        import torchvision

        torchvision.datasets.CIFAR10(root, train=train, download=True)  # writes ROOT/cifar-10-batches-py
    roots = [Path(root)] if root else []
    roots.append(Path(SHARED_CIFAR10_JPEG))
    for folder in roots:
        if (folder / "cifar-10-batches-py").is_dir():
            return _cifar_torchvision(folder, train)
        if (folder / f"{split}.tar.gz").is_file():
            return _cifar_jpeg(folder / f"{split}.tar.gz", Path(cache_dir))
    raise DatasetNotFoundError(
        "CIFAR-10 not found. Looked for ROOT/cifar-10-batches-py (torchvision's format) and "
        f"ROOT/{split}.tar.gz (JPEG archive) in: " + ", ".join(str(r) for r in roots)
    )


# --------------------------------------------------------------------------- image folders
def load_image_folder(root: str | None, train: bool, image_size: int) -> ImageData:
    """``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (or ``ROOT/test``), resized and centre-cropped."""
    import torchvision
    from torchvision.transforms import v2

    if not root:
        raise DatasetNotFoundError("data.root must name the image folder for dataset=image_folder")
    split_names = ["train"] if train else ["val", "test"]
    folder = next((Path(root) / s for s in split_names if (Path(root) / s).is_dir()), None)
    if folder is None:
        raise DatasetNotFoundError(
            f"image folder {root} has no {' or '.join(split_names)} sub-folder (want ROOT/SPLIT/<class>/<image>)"
        )
    resize = v2.Compose([v2.Resize(image_size), v2.CenterCrop(image_size), v2.PILToTensor()])
    ds = torchvision.datasets.ImageFolder(str(folder))
    images = []
    for path, _ in ds.samples:
        try:
            images.append(resize(ds.loader(path)))
        except OSError as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
    return ImageData(torch.stack(images), torch.tensor(ds.targets, dtype=torch.long), list(ds.classes))


DATASETS = ("cifar10", "cifar100", "fashion_mnist", "stl10", "image_folder", "imagenet", "imagenet100")
#: Data sets read from disk on access rather than held in memory.
STREAMED = ("imagenet", "imagenet100")


def load_dataset(
    name: str,
    root: str | None,
    train: bool,
    cache_dir: str,
    image_size: int = 32,
    download: bool = False,
    pretrain_split: str | None = None,
    class_list: str | None = None,
    reference_classes: list[str] | None = None,
):
    """Load one split of a data set by name (see :data:`DATASETS`).

    Args:
        train: the training split (else the test/validation split).
        download: fetch torchvision's files into ``root`` first (needs internet and a ``root``).
        pretrain_split: for STL-10 with ``train``: ``unlabeled`` or ``train+unlabeled`` (the
            pretraining images) instead of the labelled ``train``.
        class_list: for ``imagenet``/``image_folder``-style folders: restrict to the listed classes
            (``imagenet100`` uses ``configs/data/imagenet100.txt`` when None).
        reference_classes: the training split's classes, which a validation folder must match.

    Returns:
        :class:`ImageData` (in memory) or ``folders.FolderData`` (streamed).
    """
    if name == "fashion_mnist":
        return load_fashion_mnist(root, train, download)
    if name == "cifar10":
        return load_cifar10(root, train, cache_dir, download)
    if name == "cifar100":
        from synco.data.torchvision_formats import load_cifar100

        return load_cifar100(root, train, download)
    if name == "stl10":
        from synco.data.torchvision_formats import load_stl10

        return load_stl10(root, (pretrain_split or "train") if train else "test")
    if name == "image_folder":
        return load_image_folder(root, train, image_size)
    if name in STREAMED:
        from synco.data.folders import IMAGENET100_CLASS_LIST, load_folder_split

        if name == "imagenet100" and class_list is None:
            class_list = IMAGENET100_CLASS_LIST
        return load_folder_split(root, "train" if train else "val", class_list, reference_classes)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
