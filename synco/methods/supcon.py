"""SupCon (Khosla et al., 2020): same-class views are positives, every other view a negative; needs labels.

The loss is :func:`synco.functional.supcon_loss` (L_out, as the authors' SupConLoss) over the global
batch's two views. Defaults are the authors' argparse values (t = t_base = 0.07).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from synco.functional.supcon import CONTRAST_MODES
from synco.losses import SupCon
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.two_view import TwoViewContrastive
from synco.registry import METHODS


@dataclass
class SupConConfig:
    """``method:`` block of ``supcon``."""

    name: str = "supcon"  # supervised contrastive, in-batch
    temperature: float = 0.07  # t (the README's recipe uses 0.1)
    base_temperature: float = 0.07  # the loss is scaled by t / base_temperature, as the authors' code does
    contrast_mode: str = "all"  # all: every view is an anchor; one: view 1 only


def build_supcon(context: BuildContext) -> TwoViewContrastive:
    torch.manual_seed(context.seed)
    m = context.cfg.method
    criterion = SupCon(m.temperature, m.base_temperature, m.contrast_mode)
    return TwoViewContrastive(build_encoder(context.cfg, context.in_channels), criterion, needs_labels=True)


def validate_supcon(cfg) -> None:
    from synco.config import choice, positive

    positive(cfg, "method.temperature")
    positive(cfg, "method.base_temperature")
    choice(cfg, "method.contrast_mode", CONTRAST_MODES)


METHODS.register("supcon", MethodSpec(SupConConfig, build_supcon, validate_supcon,
                                      "SupCon: supervised contrastive over in-batch views (Khosla et al., 2020)"))
