"""Data set readers on small files written in each source's own format."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from synco.data import datasets


def write_idx(path, array, compress):
    header = (2051 if array.ndim == 3 else 2049).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") if compress else open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_in_torchvision_layout(tmp_path, monkeypatch, compress):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "nowhere"))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5])
    suffix = ".gz" if compress else ""
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    data = datasets.load_fashion_mnist(str(tmp_path), train=True)
    assert data.images.shape == (5, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert data.labels.tolist() == [3, 1, 4, 1, 5]


def test_idx_reader_rejects_other_files(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x00\x00" * 4)
    with pytest.raises(ValueError, match="not an IDX"):
        datasets._read_idx(path)


def test_cifar10_in_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = (rng.integers(0, 256, (2, 3072)).astype(np.uint8), [int(v) for v in rng.integers(0, 10, 2)])
        with open(folder / name, "wb") as f:
            pickle.dump({"data": batches[name][0], "labels": batches[name][1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": datasets.CIFAR10_CLASSES}, f)
    # torchvision checks MD5 sums of the real files; these are stand-ins with the real layout.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    data = datasets.load_cifar10(str(tmp_path), train=False, cache_dir=str(tmp_path / "cache"))
    assert data.images.shape == (2, 3, 32, 32)
    expected = torch.from_numpy(batches["test_batch"][0].reshape(2, 3, 32, 32))
    assert torch.equal(data.images, expected)
    assert data.labels.tolist() == batches["test_batch"][1]
    assert len(datasets.load_cifar10(str(tmp_path), train=True, cache_dir=str(tmp_path / "c"))) == 10


def test_unreadable_image_is_named(tmp_path):
    folder = tmp_path / "train" / "cls"
    folder.mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        datasets.load_image_folder(str(tmp_path), train=True, image_size=8)


def test_image_folder_without_split_is_explained(tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError, match="train"):
        datasets.load_image_folder(str(tmp_path), train=True, image_size=8)


def test_missing_cifar10_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCO_DATA_ROOT", str(tmp_path / "shared"))
    with pytest.raises(datasets.DatasetNotFoundError, match="cifar-10-batches-py.*train.tar.gz"):
        datasets.load_cifar10(str(tmp_path), train=True, cache_dir=str(tmp_path / "cache"))


def test_jpeg_archive_prefix_is_class_balanced():
    data = datasets.load_cifar10(None, train=False, cache_dir="data/cache").head(20)
    assert sorted(data.labels.tolist()) == sorted(list(range(10)) * 2)


@pytest.mark.parametrize("name, downloader", [("cifar10", "CIFAR10"), ("cifar100", "CIFAR100"),
                                              ("fashion_mnist", "FashionMNIST"), ("stl10", "STL10")])
def test_download_without_a_root_fetches_into_the_cache_and_is_found_there(name, downloader, tmp_path, monkeypatch):
    """data.download=true as a user with internet would: torchvision's downloader is called with the cache's
    datasets/ folder (a stand-in records the call; no network here)."""
    import torchvision

    from synco.data.datasets import download_root, load_dataset

    monkeypatch.setenv("SYNCO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SYNCO_DATA_ROOT", raising=False)
    calls = []

    class Fetched(Exception):
        pass

    def fake(root, *args, download=False, **kwargs):
        calls.append((root, download))
        raise Fetched

    monkeypatch.setattr(torchvision.datasets, downloader, fake)
    with pytest.raises(Fetched):
        load_dataset(name, None, True, None, download=True)
    assert calls == [(str(download_root()), True)] and download_root() == tmp_path / "cache" / "datasets"
    assert download_root().is_dir()


def test_a_subset_larger_than_its_split_is_refused_and_an_equal_one_is_all_of_it():
    from synco.data.datasets import ImageData
    from synco.engine.inputs import first_images

    data = ImageData(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10) % 2, ["a", "b"])
    assert len(first_images(data, 10, "data.subset", "pretraining")) == 10
    assert len(first_images(data, None, "data.subset", "pretraining")) == 10
    with pytest.raises(ValueError, match=r"data.subset=11 is larger than the pretraining split \(10 images\)"):
        first_images(data, 11, "data.subset", "pretraining")
