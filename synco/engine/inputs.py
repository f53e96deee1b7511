"""Inputs of the training loop: the splits a run uses and its stream of augmented view pairs."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from synco.data.datasets import ImageData, load_dataset
from synco.data.loaders import ViewsDataset
from synco.data.transforms import TwoViews, pretrain_transform


def load_splits(cfg: DictConfig) -> tuple[ImageData, ImageData, ImageData]:
    """(pretraining images, kNN memory bank, kNN queries), checked against the configuration.

    Raises:
        DatasetNotFoundError: the data set's files are missing.
        ValueError: image size or batch size do not fit the data.
    """
    data = cfg.data
    full_train = load_dataset(data.dataset, data.root, True, data.cache_dir, data.image_size, data.download)
    test = load_dataset(data.dataset, data.root, False, data.cache_dir, data.image_size, data.download)
    if full_train.images.shape[-1] != data.image_size:
        raise ValueError(
            f"data.image_size={data.image_size} but {data.dataset} images are {full_train.images.shape[-1]} "
            "pixels wide; set data.image_size to match"
        )
    train = full_train.head(data.subset)
    if len(train) < cfg.train.batch_size:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} is larger than the training set ({len(train)} images)"
        )
    bank = full_train.head(cfg.eval.train_subset)  # the whole training split by default
    return train, bank, test.head(cfg.eval.test_subset)


def views_iterator(cfg, data, order, batch_size, augment, generator, device, rank=0, world=1):
    """Yield this rank's (view_q, view_k, image_index) batches in ``order``.

    ``batch_size`` is the global batch B; step s covers ``order[s B:(s + 1) B]`` and rank r takes the
    r-th of its W equal slices, so W processes see together exactly what one process would. The
    ragged tail of the epoch is dropped, as in MoCo.
    """
    steps = len(order) // batch_size
    local = batch_size // world

    def rank_slice(step: int) -> torch.Tensor:
        start = step * batch_size + rank * local
        return order[start : start + local]  # (b,)

    if cfg.data.augment_on == "batch":
        for step in range(steps):
            index = rank_slice(step)  # (b,)
            images = data.images[index].to(device, non_blocking=True)  # (B, C, H, W) uint8
            yield augment(images, generator), augment(images, generator), index.to(device)
        return
    transform = pretrain_transform(
        cfg.data.augmentation, cfg.data.image_size, data.images.shape[1], augment.mean.flatten().tolist(),
        augment.std.flatten().tolist(), cfg.data.crop_min_scale,
    )
    batches = [rank_slice(s).tolist() for s in range(steps)]
    loader = torch.utils.data.DataLoader(
        ViewsDataset(data, TwoViews(transform)), batch_sampler=batches, num_workers=cfg.data.num_workers,
        pin_memory=str(device).startswith("cuda"), persistent_workers=False,
    )
    for view_q, view_k, index in loader:
        yield view_q.to(device), view_k.to(device), index.to(device)
