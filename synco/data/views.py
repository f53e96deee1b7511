"""The views a pretraining step gets: how many, at which size, with which augmentation each.

By default (``data.views: null``) every image gives two views of one augmentation (``data.augmentation`` at
``data.image_size``), as MoCo, SimCLR and SynCo use. ``data.views`` lists groups of views instead, in order:

    data:
      views:                                  # BYOL's asymmetric pair
        - {blur_p: 1.0, solarize_p: 0.0}
        - {blur_p: 0.1, solarize_p: 0.2}

    data:
      views:                                  # SwAV's multi-crop: 2 global crops, then 6 small local ones
        - {count: 2, crop_min_scale: 0.14}
        - {count: 6, size: 96, crop_min_scale: 0.05, crop_max_scale: 0.14}

Global crops come first: methods that compare only two views read the first two, and SwAV assigns codes to
crops 0 and 1. Every view draws its own augmentation from the run's stream, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ViewConfig:
    """One group of ``data.views``: ``count`` views drawn alike."""

    count: int = 1  # views of this kind per image
    size: Optional[int] = None  # side of the crop in pixels; None: data.image_size
    crop_min_scale: Optional[float] = None  # smallest crop area share; None: data.crop_min_scale
    crop_max_scale: float = 1.0  # largest crop area share (SwAV's local crops: 0.14)
    blur_p: Optional[float] = None  # Gaussian blur probability; None: the preset's (MoCo-v2: 0.5 from 64 px on)
    solarize_p: float = 0.0  # solarisation probability (BYOL's second view: 0.2)


@dataclass(frozen=True)
class ViewSpec:
    """One view with every setting resolved."""

    size: int
    crop_scale: tuple[float, float]
    blur_p: Optional[float]
    solarize_p: float


def view_specs(data_cfg) -> list[ViewSpec]:
    """The V views of ``cfg.data``, expanded and with defaults filled in."""
    groups = data_cfg.views if data_cfg.get("views") is not None else [ViewConfig(count=2)]
    specs = []
    for group in groups:
        spec = ViewSpec(
            size=group.size if group.size is not None else data_cfg.image_size,
            crop_scale=(group.crop_min_scale if group.crop_min_scale is not None else data_cfg.crop_min_scale,
                        group.crop_max_scale),
            blur_p=group.blur_p,
            solarize_p=group.solarize_p,
        )
        specs += [spec] * group.count
    return specs


def check_views(data_cfg) -> str | None:
    """The first thing wrong with ``data.views`` as one line, or None."""
    if data_cfg.get("views") is None:
        return None
    if len(data_cfg.views) == 0:
        return "data.views is empty: list at least one group of views, or null for two alike"
    for i, group in enumerate(data_cfg.views):
        at = f"data.views[{i}]"
        if group.count < 1:
            return f"{at}.count={group.count} must be at least 1"
        if group.size is not None and group.size < 1:
            return f"{at}.size={group.size} must be at least 1"
        low = group.crop_min_scale if group.crop_min_scale is not None else data_cfg.crop_min_scale
        if not 0 < low <= group.crop_max_scale <= 1:
            return f"{at}: crop scales ({low}, {group.crop_max_scale}) must satisfy 0 < min <= max <= 1"
        for key in ("blur_p", "solarize_p"):
            value = group.get(key)
            if value is not None and not 0 <= value <= 1:
                return f"{at}.{key}={value} must lie in [0, 1]"
    if sum(g.count for g in data_cfg.views) < 2:
        return "data.views gives fewer than 2 views per image; every method compares at least two"
    return None
