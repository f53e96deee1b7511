"""Backbones by name. ``forward(images)`` returns (B, F) features; ``feature_dim`` gives F."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from synco.registry import BACKBONES


class SmallCNN(nn.Module):
    """A four-block CNN for 28-32 pixel images that trains at hundreds of images/s on 2 CPU cores.

    conv3x3(32) -> conv3x3(64, stride 2) -> conv3x3(128, stride 2) -> conv3x3(256, stride 2),
    each followed by batch norm and ReLU, then global average pooling to 256 features.
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        previous = in_channels
        for i, w in enumerate(widths):
            layers += [
                nn.Conv2d(previous, w, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            previous = w
        self.features = nn.Sequential(*layers)
        self.feature_dim = previous

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images).mean(dim=(2, 3))  # (B, F)


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet without its classifier; ``small_stem`` swaps in the CIFAR stem.

    The CIFAR stem (conv 3x3 stride 1, no max-pool) is what MoCo's CIFAR demo, HCL and solo-learn use
    for 32-pixel images; parameter names stay torchvision's so weights export unchanged.
    """

    def __init__(self, name: str, in_channels: int = 3, small_stem: bool = False) -> None:
        super().__init__()
        net = getattr(torchvision.models, name)(weights=None)
        if small_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, F)


class TimmBackbone(nn.Module):
    """A timm model without its classifier (``num_classes=0``): ViT/DeiT, Swin, ConvNeXt, ...

    SynCo's authors use ViT-S/DeiT-S and Swin-T in their second paper. ``image_size`` is passed to
    models that take it (ViTs and Swins are built for a fixed input size).
    """

    def __init__(self, name: str, in_channels: int = 3, image_size: int | None = None, pretrained: bool = False) -> None:
        super().__init__()
        import timm

        extra = {}
        if image_size is not None and ("vit" in name or "deit" in name or "swin" in name):
            extra["img_size"] = image_size
        # pretrained: timm's weights (downloaded from the Hugging Face hub on first use), e.g. a BEiT to fine-tune.
        self.net = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_channels, **extra)
        self.feature_dim = self.net.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, F)


#: Prefix that names any timm model: ``model.backbone=timm:convnext_tiny``.
TIMM_PREFIX = "timm:"
#: Short names of the timm models SynCo's second paper uses.
TIMM_ALIASES = {"vit_small": "vit_small_patch16_224", "deit_small": "deit_small_patch16_224",
                "swin_tiny": "swin_tiny_patch4_window7_224"}

BACKBONES.register("small_cnn", lambda in_channels, small_stem, image_size=None: SmallCNN(in_channels))
for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    BACKBONES.register(_name, lambda in_channels, small_stem, image_size=None, _n=_name: TorchvisionResNet(
        _n, in_channels, small_stem
    ))
for _alias, _timm_name in TIMM_ALIASES.items():
    BACKBONES.register(_alias, lambda in_channels, small_stem, image_size=None, _n=_timm_name: TimmBackbone(
        _n, in_channels, image_size
    ))


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone` (besides ``timm:<any timm model>``)."""
    return sorted(BACKBONES.names())


def is_backbone(name: str) -> bool:
    """True for a registered name or ``timm:<name>`` of a model timm knows."""
    if name.startswith(TIMM_PREFIX):
        import timm

        return timm.is_model(name[len(TIMM_PREFIX):])
    return name in BACKBONES


def build_backbone(name: str, in_channels: int = 3, small_stem: bool = False, image_size: int | None = None,
                   pretrained: bool = False) -> nn.Module:
    """Build a backbone by name; it has a ``feature_dim`` attribute.

    Args:
        pretrained: start from timm's pretrained weights (timm backbones only).

    Raises:
        ValueError: for an unknown name, listing the known ones, or ``pretrained`` with a non-timm backbone.
    """
    timm_name = name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else TIMM_ALIASES.get(name)
    if timm_name is not None and is_backbone(name):
        return TimmBackbone(timm_name, in_channels, image_size, pretrained)
    if pretrained:
        raise ValueError(f"model.pretrained loads timm weights; {name!r} is not a timm backbone (use timm:<model name>)")
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list_backbones()} or timm:<model name>")
    return BACKBONES.get(name)(in_channels=in_channels, small_stem=small_stem, image_size=image_size)
