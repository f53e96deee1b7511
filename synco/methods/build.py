"""Build a method from the configuration: the only place in the library that reads it."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from synco.methods.moco import Encoder, MoCo
from synco.models import build_backbone, convert_to_split_batchnorm, projection_head
from synco.negatives import SyntheticNegatives, mochi


def build_negatives(cfg: DictConfig) -> SyntheticNegatives | None:
    """The synthetic-negative generator of ``method.name``: None for MoCo-v2."""
    neg = cfg.method.negatives
    if cfg.method.name == "moco_v2":
        return None
    if cfg.method.name == "mochi":
        return mochi(num_hard=neg.num_hard, num_mix=neg.num_mixup, num_query_mix=neg.num_interpolate)
    # The config's field names are the constructor's; only the warm-up belongs to the training loop.
    settings = {key: value for key, value in neg.items() if key != "warmup_epochs"}
    return SyntheticNegatives(**settings)


def build_method(cfg: DictConfig, in_channels: int, num_train_images: int, seed: int) -> MoCo:
    """MoCo-v2 / MoCHI / SynCo with a fresh encoder, seeded by ``seed``.

    ``method.mask_same_image=None`` turns masking on when the queue can hold a key of every
    training image, i.e. when older keys of a query's own image are in the queue.
    """
    torch.manual_seed(seed)
    backbone = build_backbone(cfg.model.backbone, in_channels=in_channels, small_stem=cfg.model.small_stem)
    head = projection_head(backbone.feature_dim, cfg.model.embedding_dim, mlp=cfg.model.mlp)
    encoder = convert_to_split_batchnorm(Encoder(backbone, head), cfg.model.bn_splits)
    mask = cfg.method.mask_same_image
    if mask is None:
        mask = cfg.method.queue_size >= num_train_images
    return MoCo(
        encoder,
        embedding_dim=cfg.model.embedding_dim,
        queue_size=cfg.method.queue_size,
        momentum=cfg.method.momentum,
        temperature=cfg.method.temperature,
        negatives=build_negatives(cfg),
        mask_same_image=bool(mask),
        shuffle_keys=cfg.model.shuffle_keys,
        queue_generator=torch.Generator().manual_seed(seed + 1),
    )
