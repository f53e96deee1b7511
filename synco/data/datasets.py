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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synco.registry import DATASETS

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
#: Environment variable naming a folder of data sets, searched when ``data.root`` is null: CIFAR-10 in
#: ``$SYNCO_DATA_ROOT/cifar10-jpeg`` (JPEG archives) or ``$SYNCO_DATA_ROOT/cifar-10-batches-py``.
DATA_ROOT_VARIABLE = "SYNCO_DATA_ROOT"


#: Environment variable naming the cache folder used when ``data.cache_dir`` is null.
CACHE_DIR_VARIABLE = "SYNCO_CACHE_DIR"


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """``cache_dir``, or the user's cache: ``$SYNCO_CACHE_DIR``, ``$XDG_CACHE_HOME/synco``, ``~/.cache/synco``.

    The default is absolute, so that every command finds the same cache from any working directory and
    in an installed (not editable) package.
    """
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synco"


def download_root() -> Path:
    """Where ``data.download=true`` puts torchvision's files when ``data.root`` is not set (and where they are
    found again): ``datasets/`` in the cache folder, ``~/.cache/synco/datasets`` by default."""
    return resolve_cache_dir(None) / "datasets"


def default_data_roots(folder: str) -> list[Path]:
    """``$SYNCO_DATA_ROOT/folder`` and ``$SYNCO_DATA_ROOT`` when the variable is set, then :func:`download_root`."""
    root = os.environ.get(DATA_ROOT_VARIABLE)
    return [*([Path(root) / folder, Path(root)] if root else []), download_root()]
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

    def select(self, indices: torch.Tensor) -> ImageData:
        """The images at ``indices`` (a task of a continual stream, a labelled subset)."""
        return ImageData(self.images[indices], self.labels[indices], self.classes)


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
    # A root that is given is the only place looked in: falling back to the default copy would train on
    # other data than the user named.
    candidates = [Path(root), Path(root) / "FashionMNIST" / "raw"] if root else [
        Path(DEBIAN_FASHION_MNIST), download_root() / "FashionMNIST" / "raw"]
    for folder in candidates:
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
            if (folder / name).exists():
                return folder
    if root:
        raise DatasetNotFoundError(
            f"Fashion-MNIST not found in data.root={root}: fix data.root, or set data.root=null to use Debian's "
            f"package dataset-fashion-mnist (files in {DEBIAN_FASHION_MNIST}). Looked for "
            f"train-images-idx3-ubyte[.gz] in: {', '.join(str(c) for c in candidates)}"
        )
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


def load_cifar10(root: str | None, train: bool, cache_dir: str | None, download: bool = False) -> ImageData:
    split = "train" if train else "test"
    if download and root:
        import torchvision

        torchvision.datasets.CIFAR10(root, train=train, download=True)  # writes ROOT/cifar-10-batches-py
    roots = [Path(root)] if root else default_data_roots("cifar10-jpeg")
    for folder in roots:
        if (folder / "cifar-10-batches-py").is_dir():
            return _cifar_torchvision(folder, train)
        if (folder / f"{split}.tar.gz").is_file():
            return _cifar_jpeg(folder / f"{split}.tar.gz", resolve_cache_dir(cache_dir))
    raise DatasetNotFoundError(
        "CIFAR-10 not found. Looked for ROOT/cifar-10-batches-py (torchvision's format) and "
        f"ROOT/{split}.tar.gz (JPEG archive) in: " + (", ".join(str(r) for r in roots) or "nowhere")
        + f". Set data.root, or {DATA_ROOT_VARIABLE} to a folder holding cifar10-jpeg/ (scripts/*.sh set it to "
        f"../shared/datasets), or pass data.download=true to fetch torchvision's copy into {download_root()}"
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


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one registered data set.

    Attributes:
        load: ``load(root, train, cache_dir, image_size, download, pretrain_split, class_list,
            reference_classes)`` -> :class:`ImageData` or ``folders.FolderData``.
        streamed: read from disk on access (True) or held in memory (False).
    """

    load: Callable[..., object]
    streamed: bool = False


def _register(name: str, load: Callable[..., object], streamed: bool = False) -> None:
    DATASETS.register(name, DatasetSpec(load, streamed))


def _cifar100(root, train, cache_dir, image_size, download, pretrain_split, class_list, reference_classes):
    from synco.data.torchvision_formats import load_cifar100

    return load_cifar100(root, train, download)


def _stl10(root, train, cache_dir, image_size, download, pretrain_split, class_list, reference_classes):
    from synco.data.torchvision_formats import load_stl10

    if download and root:
        import torchvision

        torchvision.datasets.STL10(root, split="test", download=True)  # writes ROOT/stl10_binary (every split)
    return load_stl10(root, (pretrain_split or "train") if train else "test")


def _folders(default_class_list: str | None):
    def load(root, train, cache_dir, image_size, download, pretrain_split, class_list, reference_classes):
        from synco.data import folders

        if class_list is None and default_class_list is not None:
            class_list = getattr(folders, default_class_list)
        return folders.load_folder_split(root, "train" if train else "val", class_list, reference_classes)

    return load


_register("fashion_mnist", lambda root, train, cache_dir, image_size, download, *_: load_fashion_mnist(root, train, download))
_register("cifar10", lambda root, train, cache_dir, image_size, download, *_: load_cifar10(root, train, cache_dir, download))
_register("cifar100", _cifar100)
_register("stl10", _stl10)
_register("image_folder", lambda root, train, cache_dir, image_size, *_: load_image_folder(root, train, image_size))
_register("imagenet", _folders(None), streamed=True)
_register("imagenet100", _folders("IMAGENET100_CLASS_LIST"), streamed=True)


#: The data sets ``data.download=true`` can fetch (torchvision's downloaders).
DOWNLOADABLE = ("cifar10", "cifar100", "fashion_mnist", "stl10")


def is_streamed(name: str) -> bool:
    """True for data sets read from disk on access rather than held in memory."""
    return DATASETS.get(name).streamed


def load_dataset(
    name: str,
    root: str | None,
    train: bool,
    cache_dir: str | None,
    image_size: int = 32,
    download: bool = False,
    pretrain_split: str | None = None,
    class_list: str | None = None,
    reference_classes: list[str] | None = None,
):
    """Load one split of a registered data set by name (``synco.registry.DATASETS``).

    Args:
        train: the training split (else the test/validation split).
        download: fetch torchvision's files into ``root`` first (needs internet; without a ``root``, into
            :func:`download_root`, where later runs find them without the flag).
        pretrain_split: for STL-10 with ``train``: ``unlabeled`` or ``train+unlabeled`` (the
            pretraining images) instead of the labelled ``train``.
        class_list: for ``imagenet``/``image_folder``-style folders: restrict to the listed classes
            (``imagenet100`` uses ``configs/data/imagenet100.txt`` when None).
        reference_classes: the training split's classes, which a validation folder must match.

    Returns:
        :class:`ImageData` (in memory) or ``folders.FolderData`` (streamed).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    try:
        spec = DATASETS.get(name)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    if download and not root and name in DOWNLOADABLE:
        root = str(download_root())
        Path(root).mkdir(parents=True, exist_ok=True)
    return spec.load(root, train, cache_dir, image_size, download, pretrain_split, class_list, reference_classes)
