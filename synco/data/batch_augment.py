"""MoCo-v2 augmentation applied to a whole batch at once, on any device.

Per-image torchvision transforms cost about 2 ms per image pair on one CPU core, slower than the small
CNN trains on two cores; applied to the batch as tensor operations the same family of augmentations
costs a fraction of the training step, and on a GPU it runs beside the model instead of in workers.

Each image draws its own parameters, as in torchvision: a random resized crop (area scale in
[crop_min_scale, 1], log-uniform aspect ratio in [3/4, 4/3]) with a random horizontal flip, done by one
bilinear ``grid_sample``; with probability ``jitter_p`` colour jitter (brightness, contrast,
saturation 0.4, hue 0.1 (MoCo-v1: always, hue 0.4); for one-channel images brightness and contrast only); grayscale with
probability ``grayscale_p``. Differences from torchvision, on purpose: the four jitter operations run
in one fixed order (torchvision permutes them per image), and crops are sampled in closed form
instead of by rejection. Gaussian blur (MoCo-v2, p = 0.5) has sigma and kernel scaled to the image
size and is off below 64 pixels, as in MoCo's CIFAR demo.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(shape, low, high, generator, device):
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def _gray(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)  # (B, 1, H, W)


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(dim=1)
    minc, _ = rgb.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)  # (B, 3, H, W)
    return v.unsqueeze(1) - v.unsqueeze(1) * s.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def random_resized_crop_flip(
    images: torch.Tensor, size: int, scale: tuple[float, float], generator: torch.Generator | None
) -> torch.Tensor:
    """Per-image random resized crop and horizontal flip of float images (B, C, H, W) -> (B, C, size, size)."""
    batch, device = images.shape[0], images.device
    area = _uniform(batch, scale[0], scale[1], generator, device)  # (B,) fraction of the image
    log_ratio = _uniform(batch, math.log(3 / 4), math.log(4 / 3), generator, device)
    ratio = torch.exp(log_ratio)  # (B,) width / height
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # (B,) fraction of the image width
    height = torch.sqrt(area / ratio).clamp(max=1.0)  # (B,)
    center_x = (1 - width) * (2 * torch.rand(batch, generator=generator, device=device) - 1)  # (B,) in [-1+w, 1-w]
    center_y = (1 - height) * (2 * torch.rand(batch, generator=generator, device=device) - 1)
    flip = torch.where(torch.rand(batch, generator=generator, device=device) < 0.5, -1.0, 1.0)  # (B,)
    theta = torch.zeros(batch, 2, 3, device=device)  # (B, 2, 3) affine from output to input coordinates
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = center_y
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_flip(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Per-image horizontal flip with probability 0.5 of images (B, C, H, W)."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5  # (B,)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def color_jitter(
    images: torch.Tensor,
    p: float,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Per-image colour jitter of images in [0, 1], applied with probability ``p``."""
    batch, channels, device = images.shape[0], images.shape[1], images.device
    apply = (torch.rand(batch, generator=generator, device=device) < p).view(batch, 1, 1, 1)

    def factor(amount: float) -> torch.Tensor:
        return _uniform(batch, max(0.0, 1 - amount), 1 + amount, generator, device).view(batch, 1, 1, 1)

    b, c, s = factor(brightness), factor(contrast), factor(saturation)
    h = _uniform(batch, -hue, hue, generator, device).view(batch, 1, 1)
    out = (images * b).clamp(0, 1)
    gray = out.mean(dim=1, keepdim=True) if channels == 1 else _gray(out)
    out = (c * out + (1 - c) * gray.mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
    if channels == 3:
        out = (s * out + (1 - s) * _gray(out)).clamp(0, 1)
        hsv = _rgb_to_hsv(out)
        hsv = torch.stack([(hsv[:, 0] + h) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
        out = _hsv_to_rgb(hsv).clamp(0, 1)
    return torch.where(apply, out, images)


def gaussian_blur(
    images: torch.Tensor, p: float, sigma_range: tuple[float, float], kernel_size: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Per-image Gaussian blur with probability ``p`` and sigma ~ U(sigma_range), as one grouped convolution."""
    batch, channels, height, width = images.shape
    device = images.device
    apply = (torch.rand(batch, generator=generator, device=device) < p).view(batch, 1, 1, 1)
    sigma = _uniform(batch, sigma_range[0], sigma_range[1], generator, device)  # (B,)
    offsets = torch.arange(kernel_size, device=device, dtype=images.dtype) - kernel_size // 2  # (k,)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))  # (B, k)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B C, k): one separable kernel per image and channel
    pad = kernel_size // 2
    x = images.reshape(1, batch * channels, height, width)
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), kernel.view(-1, 1, 1, kernel_size), groups=batch * channels)
    x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), kernel.view(-1, 1, kernel_size, 1), groups=batch * channels)
    return torch.where(apply, x.view(batch, channels, height, width), images)


def random_grayscale(images: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    if images.shape[1] != 3 or p <= 0:
        return images
    batch = images.shape[0]
    apply = (torch.rand(batch, generator=generator, device=images.device) < p).view(batch, 1, 1, 1)
    return torch.where(apply, _gray(images).expand_as(images), images)


def random_solarize(images: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Each image (B, C, H, W) in [0, 1] solarised with probability ``p``: pixels at 0.5 or above become 1 - x
    (torchvision's ``RandomSolarize(threshold=0.5)`` on float images)."""
    chosen = _uniform((images.shape[0], 1, 1, 1), 0.0, 1.0, generator, images.device) < p
    return torch.where(chosen & (images >= 0.5), 1 - images, images)


class BatchAugment(torch.nn.Module):
    """MoCo-v2-style augmentation of a uint8 batch (B, C, H, W) -> normalised float (B, C, size, size).

    Args:
        size: output side length.
        mean, std: per-channel normalisation in [0, 1] units.
        crop_min_scale: smallest crop area (0.2 in MoCo).
        jitter_p: probability of colour jitter (0.8 in MoCo-v2, 1.0 in MoCo-v1).
        grayscale_p: probability of grayscale (0.2).
        hue: hue jitter (0.1 in MoCo-v2, 0.4 in MoCo-v1).
        blur_p: probability of Gaussian blur; None: MoCo-v2's 0.5 from 64 pixels up, else 0 (use 0 for MoCo-v1).
        crop: False for images that are already randomly cropped to ``size`` (only the flip is drawn).
        crop_max_scale: largest crop area (1.0; SwAV's local crops 0.14).
        solarize_p: probability of solarisation, x -> 1 - x above 0.5 (BYOL's second view: 0.2).
    """

    def __init__(
        self,
        size: int,
        mean: list[float],
        std: list[float],
        crop_min_scale: float = 0.2,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        hue: float = 0.1,
        blur_p: float | None = None,
        crop: bool = True,
        crop_max_scale: float = 1.0,
        solarize_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.size = size
        self.crop = crop
        self.crop_scale = (crop_min_scale, crop_max_scale)
        self.solarize_p = solarize_p
        self.jitter_p = jitter_p
        self.grayscale_p = grayscale_p
        self.hue = hue
        # MoCo-v2 blurs with p = 0.5, sigma in [0.1, 2] px and a 23 px kernel at 224 px; both scale with the
        # image here, and blur is off below 64 px (MoCo's CIFAR demo has none).
        self.blur_p = (0.5 if size >= 64 else 0.0) if blur_p is None else blur_p
        self.blur_sigma = (0.1 * size / 224, 2.0 * size / 224)
        self.blur_kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @torch.no_grad()
    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """No augmentation: uint8 (B, C, H, W) at the output size -> normalised float, as for evaluation."""
        return (images.float() / 255 - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float() / 255  # (B, C, H, W) in [0, 1]
        if self.crop:
            x = random_resized_crop_flip(x, self.size, self.crop_scale, generator)
        else:  # already cropped (augment_on=accelerator: the crops come from DataLoader workers)
            x = random_flip(x, generator)
        x = color_jitter(x, self.jitter_p, 0.4, 0.4, 0.4, self.hue, generator)
        x = random_grayscale(x, self.grayscale_p, generator)
        if self.blur_p > 0:
            x = gaussian_blur(x, self.blur_p, self.blur_sigma, self.blur_kernel, generator)
        if self.solarize_p > 0:
            x = random_solarize(x, self.solarize_p, generator)
        return (x - self.mean) / self.std  # (B, C, size, size)


class ViewsAugment(torch.nn.Module):
    """The V views of a batch: one :class:`BatchAugment` per view, applied in order with one generator.

    ``forward(images, generator)`` -> tuple of V (B, C, size_v, size_v) tensors; ``augments[v]`` is view v's.
    """

    def __init__(self, augments: list[BatchAugment]) -> None:
        super().__init__()
        self.augments = torch.nn.ModuleList(augments)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        return tuple(augment(images, generator) for augment in self.augments)
