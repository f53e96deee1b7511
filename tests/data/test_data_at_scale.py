"""ImageNet-style folders (streamed), ImageNet-100's class list, CIFAR-100 and STL-10 in torchvision's formats.

Small fakes in the real on-disk formats stand in for the data sets, which are not on this machine.
"""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import assert_knn_recomputed

from synco.config import ConfigError, load_config
from synco.data.datasets import DatasetNotFoundError, load_dataset
from synco.data.folders import IMAGENET100_CLASS_LIST, UnreadableImageError, read_class_list
from synco.data.torchvision_formats import STL10_CLASSES


def write_folder(root, split, classes, per_class=3, size=(40, 30)):
    for c, name in enumerate(classes):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour = (20 * c, 10 * i, 100)
            Image.new("RGB", (size[0] + i, size[1]), colour).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_folder_split_is_listed_class_interleaved_and_decoded_on_access(tmp_path):
    write_folder(tmp_path, "train", ["b", "a"], per_class=3)
    data = load_dataset("imagenet", str(tmp_path), True, "unused")
    assert data.classes == ["a", "b"] and not data.in_memory
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]  # first image of each class, then the second ...
    image = data.load(3)
    assert image.dtype == torch.uint8 and image.shape == (3, 30, 41)  # class b, image 1 (40 + 1 wide)
    assert data.head(4).labels.tolist() == [0, 1, 0, 1]


def test_folder_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("imagenet", str(tmp_path / "nowhere"), True, "unused")
    write_folder(tmp_path, "train", ["a", "b"])
    with pytest.raises(DatasetNotFoundError, match="val does not exist"):
        load_dataset("imagenet", str(tmp_path), False, "unused")
    write_folder(tmp_path, "val", ["a", "c"])
    with pytest.raises(ValueError, match=r"missing here \['b'\], extra here \['c'\]"):
        load_dataset("imagenet", str(tmp_path), False, "unused", reference_classes=["a", "b"])
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no images"):
        load_dataset("imagenet", str(tmp_path), True, "unused")
    listed = tmp_path / "list.txt"
    listed.write_text("a\nzebra\n")
    with pytest.raises(DatasetNotFoundError, match="lacks 1 of the listed classes, e.g. zebra"):
        load_dataset("imagenet", str(tmp_path), True, "unused", class_list=str(listed))


def test_unreadable_image_is_named(tmp_path):
    write_folder(tmp_path, "train", ["a"], per_class=1)
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"not an image")
    data = load_dataset("imagenet", str(tmp_path), True, "unused")
    broken = data.paths.index(str(tmp_path / "train" / "a" / "broken.jpg"))
    with pytest.raises(UnreadableImageError, match="broken.jpg"):
        data.load(broken)


def test_imagenet100_uses_the_shipped_cmc_class_list(tmp_path):
    wnids = read_class_list(IMAGENET100_CLASS_LIST)
    assert len(wnids) == 100 and len(set(wnids)) == 100 and all(w.startswith("n") and len(w) == 9 for w in wnids)
    assert wnids[:3] == ["n02869837", "n01749939", "n02488291"] and wnids[-1] == "n02090622"
    write_folder(tmp_path, "train", [*wnids, "n99999999"], per_class=1, size=(8, 8))  # one extra class
    data = load_dataset("imagenet100", str(tmp_path), True, "unused")
    assert data.classes == wnids and len(data) == 100


def test_cifar100_in_torchvision_format(tmp_path, monkeypatch):
    import torchvision

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(range(n))}
        (folder / split).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"class{i}" for i in range(100)]}))
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)  # our fake's MD5s
    train = load_dataset("cifar100", str(tmp_path), True, "unused")
    assert train.images.shape == (12, 3, 32, 32) and train.labels.tolist() == list(range(12))
    assert len(train.classes) == 100
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python does not exist"):
        load_dataset("cifar100", str(tmp_path / "elsewhere"), True, "unused")


def test_stl10_memory_mapped_splits_match_torchvision(tmp_path, monkeypatch):
    import torchvision

    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("test", 3), ("unlabeled", 6)):
        rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            rng.integers(1, 11, n, dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES))
    monkeypatch.setattr(torchvision.datasets.STL10, "_check_integrity", lambda self: True)
    for split in ("train", "test"):
        mine = load_dataset("stl10", str(tmp_path), split == "train", "unused")
        theirs = torchvision.datasets.STL10(str(tmp_path), split=split)
        assert torch.equal(mine.images, torch.from_numpy(theirs.data))
        assert mine.labels.tolist() == theirs.labels.tolist()
    unlabeled = load_dataset("stl10", str(tmp_path), True, "unused", pretrain_split="unlabeled")
    assert unlabeled.images.shape == (6, 3, 96, 96) and (unlabeled.labels == -1).all()
    both = load_dataset("stl10", str(tmp_path), True, "unused", pretrain_split="train+unlabeled")
    assert len(both) == 10
    (folder / "train_y.bin").write_bytes(b"\x01")
    with pytest.raises(ValueError, match="holds 1 labels for 4 images"):
        load_dataset("stl10", str(tmp_path), True, "unused")


def test_streamed_data_sets_refuse_batch_augmentation():
    with pytest.raises(ConfigError, match="data.augment_on=batch needs a data set held in memory"):
        load_config(None, ["data.dataset=imagenet", "data.augment_on=batch"])
    with pytest.raises(ConfigError, match="data.pretrain_split is for dataset=stl10 only"):
        load_config(None, ["data.dataset=cifar10", "data.pretrain_split=unlabeled"])


@pytest.mark.slow
@pytest.mark.parametrize("augment_on", ["sample", "accelerator"])
def test_pretrain_on_a_streamed_folder_with_workers(tmp_path, augment_on):
    from synco.engine.metrics import read_metrics
    from synco.pipelines.pretrain import pretrain

    write_folder(tmp_path / "data", "train", ["a", "b", "c", "d"], per_class=24, size=(40, 36))
    write_folder(tmp_path / "data", "val", ["a", "b", "c", "d"], per_class=4, size=(40, 36))
    cfg = load_config(None, [
        "data.dataset=imagenet", f"data.root={tmp_path / 'data'}", "data.image_size=32", f"data.augment_on={augment_on}",
        "data.num_workers=2", "model.backbone=small_cnn", "method.name=synco", "method.queue_size=64",
        "method.negatives.num_hard=8", "method.negatives.warmup_epochs=0", "train.batch_size=32", "train.epochs=2",
        "train.progress=false", "eval.knn_k=5", "eval.baselines=true", f"run_dir={tmp_path / 'run'}",
    ])
    record = pretrain(cfg)
    assert record["finished"]
    assert_knn_recomputed(record, tmp_path / "run", test_size=16)
    merged = {k: v for r in read_metrics(tmp_path / "run" / "metrics.jsonl") for k, v in r.items()}
    assert "eval/knn_top1_untrained" in merged and "eval/knn_top1_raw_pixels" not in merged
