"""SupCon (Khosla et al., 2020): same-class views are positives, every other view a negative; needs labels.

The loss is :func:`synco.functional.supcon_loss` (L_out, as the authors' SupConLoss) over the global
batch's two views. Defaults are the authors' argparse values (t = t_base = 0.07).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from synco.checks import ConfigError, at_least, choice, positive
from synco.functional.supcon import CONTRAST_MODES
from synco.losses import SupCon, SupConQueue
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.in_batch_synthesis import (
    InBatchNegativesConfig,
    build_in_batch_synthesis,
    check_in_batch_negatives,
    synthesizes,
)
from synco.methods.queue_contrastive import build_queue_method
from synco.methods.two_view import TwoViewContrastive
from synco.registry import METHODS


@dataclass
class SupConConfig:
    """``method:`` block of ``supcon``."""

    name: str = "supcon"  # supervised contrastive, in-batch
    temperature: float = 0.07  # t (the README's recipe uses 0.1)
    base_temperature: float = 0.07  # the loss is scaled by t / base_temperature, as the authors' code does
    contrast_mode: str = "all"  # all: every view is an anchor; one: view 1 only (in-batch negatives only)
    negatives_from: str = "batch"  # batch: the 2B views; queue: batch keys + a label-aware queue ("MoCo trick")
    queue_size: int = 4096  # K of negatives_from=queue
    momentum: float = 0.99  # key encoder momentum of negatives_from=queue
    # Synthetic negatives per anchor from its N hardest in-batch negatives of other classes (negatives_from=batch, contrast_mode=all) (SynCo's six strategies; every count 0,
    # the default: none)
    negatives: InBatchNegativesConfig = field(default_factory=lambda: InBatchNegativesConfig())


def build_supcon(context: BuildContext) -> TwoViewContrastive:
    torch.manual_seed(context.seed)
    m = context.cfg.method
    if m.negatives_from == "queue":
        return build_queue_method(context, SupConQueue(m.temperature, m.base_temperature))
    criterion = SupCon(m.temperature, m.base_temperature, m.contrast_mode)
    negatives, schedule = build_in_batch_synthesis(m.negatives)
    return TwoViewContrastive(build_encoder(context.cfg, context.in_channels), criterion, needs_labels=True,
                              negatives=negatives, schedule=schedule)


def check_negative_source(cfg) -> None:
    """``method.negatives_from`` is batch or queue; the queue's size and momentum are in range."""

    choice(cfg, "method.negatives_from", ("batch", "queue"))
    at_least(cfg, "method.queue_size", 1)
    if not 0 <= cfg.method.momentum <= 1:

        raise ConfigError(f"method.momentum={cfg.method.momentum} must lie in [0, 1]")


def check_batch_synthesis(cfg) -> None:
    """``method.negatives``: valid, and only with the in-batch form (the queue forms make none)."""
    check_in_batch_negatives(cfg)
    if synthesizes(cfg) and cfg.method.negatives_from != "batch":
        raise ConfigError("method.negatives.* makes synthetic negatives from the batch: it needs "
                          f"method.negatives_from=batch, not {cfg.method.negatives_from}")


def validate_supcon(cfg) -> None:
    positive(cfg, "method.temperature")
    positive(cfg, "method.base_temperature")
    choice(cfg, "method.contrast_mode", CONTRAST_MODES)
    check_negative_source(cfg)
    check_batch_synthesis(cfg)
    if synthesizes(cfg) and cfg.method.contrast_mode != "all":
        raise ConfigError("method.negatives.* gives every one of the 2B views its synthetic negatives: it needs "
                          "method.contrast_mode=all")


METHODS.register("supcon", MethodSpec(SupConConfig, build_supcon, validate_supcon,
                                      "SupCon: supervised contrastive over in-batch views (Khosla et al., 2020)"))
