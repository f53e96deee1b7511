"""The online encoder every method shares: backbone -> projection head -> embedding (unit by default)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from synco.models import build_backbone, convert_to_split_batchnorm, projection_head
from synco.models.compiled import CompilableForward


class Encoder(CompilableForward, nn.Module):
    """Backbone followed by a projection head; returns embeddings (B, D), L2-normalised unless ``normalize=False``
    (SimSiam, Barlow Twins and VICReg feed their losses the raw projections).

    ``compile_forward()`` (``trainer.compile``) compiles backbone + head + normalisation as one graph for
    training-mode calls; evaluation runs the eager code.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.normalize = normalize

    def eager_forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.head(self.backbone(images))  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z


def build_model_backbone(cfg: DictConfig, in_channels: int) -> nn.Module:
    """``cfg.model``'s backbone (its ``feature_dim`` attribute gives F)."""
    model = cfg.model
    return build_backbone(model.backbone, in_channels=in_channels, small_stem=model.small_stem,
                          image_size=cfg.data.image_size, pretrained=model.pretrained)


def build_encoder(cfg: DictConfig, in_channels: int,
                  head: Callable[[int], nn.Module] | None = None, normalize: bool = True) -> Encoder:
    """``cfg.model``'s backbone and a head, batch norm split into ``model.bn_splits`` groups.

    Args:
        head: ``head(F) -> module`` (a method's own projector); None: MoCo-v2's MLP (or, with ``model.mlp=false``,
            MoCo-v1's linear head) to ``model.embedding_dim``.
        normalize: L2-normalise the embeddings.

    Draws its initial weights from torch's global generator: the builder seeds it first.
    """
    model = cfg.model
    backbone = build_model_backbone(cfg, in_channels)
    projector = head(backbone.feature_dim) if head is not None else projection_head(
        backbone.feature_dim, model.embedding_dim, mlp=model.mlp)
    return convert_to_split_batchnorm(Encoder(backbone, projector, normalize), model.bn_splits)
