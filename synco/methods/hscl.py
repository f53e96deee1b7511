"""SCL and H-SCL (Jiang et al., 2022): label-conditioned negatives, plain (``scl``) or hard (``hscl``).

The loss is :func:`synco.functional.hscl_loss` over the global batch's two views: positives are every
same-class view, negatives the other-class ones, tilted by exp(beta s) (H-SCL(beta)) or cut at
e^s >= threshold (H-SCL(tau)); ``scl`` is beta = 0, the authors' ``nce_supervised_easy``. The authors
hard-code t = 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from synco.checks import ConfigError, at_least, positive
from synco.losses import HSCL, HSCLQueue
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.queue_contrastive import build_queue_method
from synco.methods.in_batch_synthesis import InBatchNegativesConfig, build_in_batch_synthesis
from synco.methods.supcon import check_batch_synthesis, check_negative_source
from synco.methods.two_view import TwoViewContrastive
from synco.registry import METHODS


@dataclass
class SCLConfig:
    """``method:`` block of ``scl``."""

    name: str = "scl"  # supervised CL: uniform other-class negatives (H-SCL's baseline)
    temperature: float = 0.5  # t, 0.5 in the authors' code


@dataclass
class HSCLConfig:
    """``method:`` block of ``hscl``."""

    name: str = "hscl"  # H-SCL: other-class negatives tilted towards the anchor
    temperature: float = 0.5  # t, 0.5 in the authors' code
    beta: float = 1.0  # H-SCL(beta): weights exp(beta s / t) on the other-class negatives
    threshold: Optional[float] = None  # H-SCL(tau): uniform over other-class negatives with exp(s / t) >= tau
    detach_weights: bool = False  # stop the gradient through the weights (their code detaches when beta < 1)
    negatives_from: str = "batch"  # batch: the 2B views; queue: batch keys + a label-aware queue
    queue_size: int = 4096  # K of negatives_from=queue
    momentum: float = 0.99  # key encoder momentum of negatives_from=queue
    # Synthetic negatives per anchor from its N hardest in-batch negatives of other classes (negatives_from=batch;
    # SynCo's six strategies; every count 0, the default: none)
    negatives: InBatchNegativesConfig = field(default_factory=lambda: InBatchNegativesConfig())


def build_scl(context: BuildContext) -> TwoViewContrastive:
    torch.manual_seed(context.seed)
    criterion = HSCL(context.cfg.method.temperature, beta=0.0)
    return TwoViewContrastive(build_encoder(context.cfg, context.in_channels), criterion, needs_labels=True)


def build_hscl(context: BuildContext) -> TwoViewContrastive:
    torch.manual_seed(context.seed)
    m = context.cfg.method
    if m.negatives_from == "queue":
        return build_queue_method(context, HSCLQueue(m.temperature, m.beta, m.threshold, m.detach_weights))
    criterion = HSCL(m.temperature, m.beta, m.threshold, m.detach_weights)
    negatives, schedule = build_in_batch_synthesis(m.negatives)
    return TwoViewContrastive(build_encoder(context.cfg, context.in_channels), criterion, needs_labels=True,
                              negatives=negatives, schedule=schedule)


def validate_scl(cfg) -> None:
    positive(cfg, "method.temperature")


def validate_hscl(cfg) -> None:
    positive(cfg, "method.temperature")
    at_least(cfg, "method.beta", 0.0)
    if cfg.method.threshold is not None and cfg.method.threshold <= 0:
        raise ConfigError(f"method.threshold={cfg.method.threshold} must be positive (it bounds exp(s / t))")
    check_negative_source(cfg)
    check_batch_synthesis(cfg)


METHODS.register("scl", MethodSpec(SCLConfig, build_scl, validate_scl,
                                   "SCL: supervised CL with uniform other-class negatives (H-SCL's baseline)"))
METHODS.register("hscl", MethodSpec(HSCLConfig, build_hscl, validate_hscl,
                                    "H-SCL: supervised CL with hard other-class negatives (Jiang et al., 2022)"))
