"""Inputs of the training loop: the splits a run uses and its stream of augmented view pairs."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torchvision.transforms import v2

from synco.data.batch import Batch
from synco.data.batch_augment import BatchAugment, ViewsAugment
from synco.data.datasets import load_dataset
from synco.data.loaders import ViewsDataset
from synco.data.subsets import read_subset
from synco.data.transforms import MultiViews, pretrain_transform
from synco.data.views import view_specs


def load_labelled_splits(cfg: DictConfig):
    """(labelled training split, test split) of ``cfg.data``, whole; a streamed test split must have the
    training split's classes. Used by pretraining and by every evaluation protocol.
    """
    data = cfg.data

    def load(train: bool, **extra):
        return load_dataset(data.dataset, data.root, train, data.cache_dir, data.image_size, data.download,
                            class_list=data.class_list, **extra)

    labelled = load(True)
    return labelled, load(False, reference_classes=None if labelled.in_memory else labelled.classes)


def load_splits(cfg: DictConfig):
    """(pretraining images, kNN memory bank, kNN queries), checked against the configuration.

    The bank is the labelled training split; for STL-10 the pretraining images are its unlabeled split
    (``data.pretrain_split``), for every other data set the training split itself.

    Raises:
        DatasetNotFoundError: the data set's files are missing.
        ValueError: image size or batch size do not fit the data; malformed folders.
    """
    data = cfg.data
    labelled, test = load_labelled_splits(cfg)
    if labelled.in_memory and labelled.images.shape[-1] != data.image_size:
        raise ValueError(
            f"data.image_size={data.image_size} but {data.dataset} images are {labelled.images.shape[-1]} "
            "pixels wide; set data.image_size to match"
        )
    train = pretraining_images(cfg, labelled)
    if len(train) < cfg.train.batch_size:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} is larger than the training set ({len(train)} images)"
        )
    bank = first_images(labelled, cfg.eval.train_subset, "eval.train_subset", "training")  # all by default
    return train, bank, first_images(test, cfg.eval.test_subset, "eval.test_subset", "test")


def first_images(data, count: int | None, key: str, split: str):
    """``data.head(count)``, refusing a ``count`` larger than the split (a typo such as 999999 for 9999 would
    otherwise train or evaluate silently on everything).

    Raises:
        ValueError: naming ``key``, the count and the split's size.
    """
    if count is not None and count > len(data):
        raise ValueError(f"{key}={count} is larger than the {split} split ({len(data)} images); "
                         f"use at most {len(data)}, or null for all of it")
    return data.head(count)


def pretraining_images(cfg: DictConfig, labelled):
    """The images pretraining trains on: ``data.subset`` of the labelled training split, or for STL-10 of its
    ``data.pretrain_split`` (unlabeled by default)."""
    data = cfg.data
    images = labelled
    if data.dataset == "stl10":
        images = load_dataset(data.dataset, data.root, True, data.cache_dir, data.image_size, data.download,
                              pretrain_split=data.pretrain_split or "unlabeled")
    images = first_images(images, data.subset, "data.subset", "pretraining")
    if data.train_subset_file:

        images = images.select(read_subset(data.train_subset_file, images))
    return images


def check_training_labels(data, method_name: str) -> None:
    """A supervised method's pretraining images must each carry a label in [0, number of classes).

    Raises:
        ValueError: naming the method and how many images lack a label or have one out of range.
    """
    labels = data.labels
    missing = int((labels < 0).sum())
    if missing:
        raise ValueError(
            f"method.name={method_name} needs labels, and {missing} of the {len(labels)} pretraining images have "
            "none (an unlabelled split such as STL-10's data.pretrain_split=unlabeled cannot train it)"
        )
    outside = int((labels >= len(data.classes)).sum())
    if outside:
        raise ValueError(
            f"{outside} pretraining labels lie outside the {len(data.classes)} classes [0, {len(data.classes) - 1}]"
        )


class SampleLoader:
    """Per-image augmentation in DataLoader workers (``data.augment_on=sample``), one loader per run.

    Each epoch gets its batches (this rank's slices of the global order) and a worker seed drawn from
    the run's data generator, so a resumed run repeats the same augmentations. With
    ``data.persistent_workers`` the workers live across epochs (faster epoch starts) and keep their own
    random state, so a resumed run no longer repeats them exactly.
    """

    def __init__(self, cfg: DictConfig, data, mean: list[float], std: list[float], device) -> None:
        transforms = []
        for view in view_specs(cfg.data):
            if cfg.data.augment_on == "accelerator":  # workers only crop; BatchAugment(crop=False) does the rest
                transforms.append(v2.RandomResizedCrop(view.size, scale=view.crop_scale, antialias=True))
            else:
                transforms.append(pretrain_transform(
                    cfg.data.augmentation, view.size, data.channels, mean, std, *view.crop_scale, view.blur_p,
                    view.solarize_p))
        self.dataset = ViewsDataset(data, MultiViews(transforms))
        self.workers = cfg.data.num_workers
        self.persistent = cfg.data.persistent_workers and self.workers > 0
        self.pin = str(device).startswith("cuda")
        self.batches: list[list[int]] = []
        self.loader = None

    def epoch(self, batches: list[list[int]], seed: int):
        self.batches[:] = batches  # the persistent loader's sampler reads this list
        if self.loader is None or not self.persistent:
            self.loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=self.batches, num_workers=self.workers, pin_memory=self.pin,
                persistent_workers=self.persistent, generator=torch.Generator().manual_seed(seed),
                prefetch_factor=4 if self.workers > 0 else None,
            )
        return iter(self.loader)


def augmentation(cfg: DictConfig, data, mean: list[float], std: list[float], device):
    """(batched augmentation of the V views of ``data.views`` (a ``ViewsAugment``) or None, per-image SampleLoader
    or None) for ``cfg.data.augment_on``.

    ``batch``: ``BatchAugment`` does everything on the device; ``accelerator``: workers decode and crop,
    ``BatchAugment(crop=False)`` does the rest; ``sample``: the workers do everything.
    """

    augment = sample_loader = None
    if cfg.data.augment_on in ("batch", "accelerator"):  # tensor ops on the whole batch, on the training device
        moco_v2 = cfg.data.augmentation == "moco_v2"
        augment = ViewsAugment([
            BatchAugment(
                view.size, mean, std, view.crop_scale[0], jitter_p=0.8 if moco_v2 else 1.0, hue=0.1 if moco_v2 else 0.4,
                blur_p=view.blur_p if view.blur_p is not None else (None if moco_v2 else 0.0),
                crop=cfg.data.augment_on == "batch", crop_max_scale=view.crop_scale[1], solarize_p=view.solarize_p,
            ) for view in view_specs(cfg.data)
        ]).to(device)
    if cfg.data.augment_on != "batch":  # DataLoader workers: everything (sample) or decode + crop (accelerator)
        sample_loader = SampleLoader(cfg, data, mean, std, device)
    return augment, sample_loader


def views_iterator(cfg, data, order, batch_size, augment, generator, device, rank=0, world=1, sample_loader=None,
                   worker_seed=0, first_step=0):
    """Yield this rank's :class:`~synco.data.batch.Batch` es (the views of ``data.views``, image indices, labels) in
    ``order``.

    ``batch_size`` is the global batch B; step s covers ``order[s B:(s + 1) B]`` and rank r takes the
    r-th of its W equal slices, so W processes see together exactly what one process would. The
    ragged tail of the epoch is dropped, as in MoCo. Labels come along when the data set has any
    (``data.labels >= 0``); self-supervised methods ignore them.

    ``first_step`` > 0 continues an epoch from a mid-epoch checkpoint: the batches of the steps before it are
    skipped, with the random streams as they were after them. Batched augmentation (``augment_on=batch``) and
    DataLoaders without workers skip them without work (their streams were saved after them); workers draw
    from per-worker streams seeded each epoch, so their first batches are produced and dropped.
    """
    steps = len(order) // batch_size
    local = batch_size // world
    labels = data.labels if bool((data.labels >= 0).any()) else None

    def make(views, index):  # index (b,) on the CPU: labels are looked up there, with no device sync
        batch_labels = None if labels is None else labels[index].to(device, non_blocking=True)
        return Batch(views=tuple(views), index=index.to(device, non_blocking=True), labels=batch_labels)

    def rank_slice(step: int) -> torch.Tensor:
        start = step * batch_size + rank * local
        return order[start : start + local]  # (b,)

    if cfg.data.augment_on == "batch":
        for step in range(first_step, steps):
            index = rank_slice(step)  # (b,)
            images = data.images[index].to(device, non_blocking=True)  # (b, C, H, W) uint8
            yield make(augment(images, generator), index)  # the views in order, from one stream
        return
    batches = [rank_slice(s).tolist() for s in range(steps)]
    # Workers seed their streams from worker_seed at every epoch: their first batches are produced and dropped.
    # Without workers the augmentations draw from this process's stream, restored as it was after them.
    dropped = first_step if sample_loader.workers > 0 else 0
    for step, (*views, index) in enumerate(sample_loader.epoch(batches[first_step - dropped:], worker_seed)):
        if step < dropped:
            continue
        views = [view.to(device, non_blocking=True) for view in views]
        if cfg.data.augment_on == "accelerator":  # uint8 crops from the workers: the rest of each view's recipe
            views = [view_augment(view, generator) for view_augment, view in zip(augment.augments, views)]
        yield make(views, index)
