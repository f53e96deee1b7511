"""Backbones, heads and the single-process shuffle-BN stand-in."""

from synco.models.backbones import build_backbone, list_backbones
from synco.models.batchnorm import SplitBatchNorm2d, convert_to_split_batchnorm
from synco.models.heads import batchnorm_mlp, projection_head

__all__ = [
    "SplitBatchNorm2d",
    "batchnorm_mlp",
    "build_backbone",
    "convert_to_split_batchnorm",
    "list_backbones",
    "projection_head",
]
