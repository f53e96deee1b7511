"""MoCo v1 / v2 augmentations, scaled to the image size and aware of grayscale images.

MoCo-v2 (Chen et al., 2020) on 224-pixel ImageNet: RandomResizedCrop(224, scale=(0.2, 1)),
ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8, RandomGrayscale(p = 0.2), GaussianBlur(sigma in
[0.1, 2]) with p = 0.5, horizontal flip. MoCo-v1 uses scale (0.2, 1), ColorJitter(0.4, 0.4, 0.4, 0.4)
always, grayscale 0.2, no blur. Here the crop size is the data's image size, the blur kernel is about 10 %
of it (23 px at 224), sigma scales with it, and blur is off below 64 pixels as in MoCo's CIFAR demo; for one-channel images
the colour operations reduce to brightness and contrast.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

AUGMENTATIONS = ("moco_v1", "moco_v2")


def pretrain_transform(
    name: str, image_size: int, channels: int, mean: list[float], std: list[float], crop_min_scale: float = 0.2,
    crop_max_scale: float = 1.0, blur_p: float | None = None, solarize_p: float = 0.0,
) -> v2.Compose:
    """The augmentation of one view, from a uint8 (C, H, W) tensor to a normalised float tensor.

    ``blur_p`` None keeps the preset's blur (MoCo-v2: 0.5 from 64 pixels up); ``solarize_p`` > 0 adds
    solarisation at threshold 0.5 after the blur (BYOL's second view).
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {AUGMENTATIONS}")
    ops: list = [v2.RandomResizedCrop(image_size, scale=(crop_min_scale, crop_max_scale), antialias=True)]
    if channels == 3:
        jitter = v2.ColorJitter(0.4, 0.4, 0.4, 0.1 if name == "moco_v2" else 0.4)
        ops += [v2.RandomApply([jitter], p=0.8) if name == "moco_v2" else jitter, v2.RandomGrayscale(p=0.2)]
    else:
        jitter = v2.ColorJitter(brightness=0.4, contrast=0.4)
        ops += [v2.RandomApply([jitter], p=0.8) if name == "moco_v2" else jitter]
    if blur_p is None:
        blur_p = 0.5 if name == "moco_v2" and image_size >= 64 else 0.0
    if blur_p > 0:
        kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)
        sigma = (0.1 * image_size / 224, 2.0 * image_size / 224)
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=sigma)], p=blur_p))
    ops += [v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
    if solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=0.5, p=solarize_p))
    ops.append(v2.Normalize(mean, std))
    return v2.Compose(ops)


def eval_transform(mean: list[float], std: list[float], image_size: int | None = None) -> v2.Compose:
    """Evaluation: no augmentation. With ``image_size`` (images of any size read from disk): resize
    the short side to ``image_size / 0.875`` and centre-crop ``image_size`` (256 -> 224 on ImageNet)."""
    resize = [] if image_size is None else [
        v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size)
    ]
    return v2.Compose([*resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class MultiViews:
    """Applies one transform per view, in order: a tuple of V views."""

    def __init__(self, transforms: list) -> None:
        self.transforms = transforms

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(transform(image) for transform in self.transforms)


class TwoViews:
    """Applies one augmentation twice, independently: (query view, key view)."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image), self.transform(image)
