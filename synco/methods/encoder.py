"""The online encoder every method shares: backbone -> projection head -> unit embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from synco.models import build_backbone, convert_to_split_batchnorm, projection_head
from synco.models.compiled import CompilableForward


class Encoder(CompilableForward, nn.Module):
    """Backbone followed by a projection head; returns unit embeddings (B, D).

    ``compile_forward()`` (``trainer.compile``) compiles backbone + head + normalisation as one graph for
    training-mode calls; evaluation runs the eager code.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def eager_forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(images)), dim=1)  # (B, D)


def build_encoder(cfg: DictConfig, in_channels: int) -> Encoder:
    """``cfg.model``'s backbone and MLP (or linear) head, batch norm split into ``model.bn_splits`` groups.

    Draws its initial weights from torch's global generator: the builder seeds it first.
    """
    model = cfg.model
    backbone = build_backbone(model.backbone, in_channels=in_channels, small_stem=model.small_stem,
                              image_size=cfg.data.image_size, pretrained=model.pretrained)
    head = projection_head(backbone.feature_dim, model.embedding_dim, mlp=model.mlp)
    return convert_to_split_batchnorm(Encoder(backbone, head), model.bn_splits)
