"""HCL / H-UCL (Robinson et al., 2021): SimCLR's two views with hard, debiased in-batch negatives, no labels.

The loss is :func:`synco.functional.hcl_loss` over the global batch (``two_view.TwoViewContrastive``).
Defaults are the authors' (``image/main.py``, STL-10): t 0.5, beta 1, tau_plus 0.1, clamp on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from synco.checks import ConfigError, at_least, positive
from synco.losses import HCL
from synco.methods.base import BuildContext, MethodSpec
from synco.methods.encoder import build_encoder
from synco.methods.in_batch_synthesis import InBatchNegativesConfig, build_in_batch_synthesis, check_in_batch_negatives
from synco.methods.two_view import TwoViewContrastive
from synco.registry import METHODS


@dataclass
class HCLConfig:
    """``method:`` block of ``hcl``."""

    name: str = "hcl"  # H-UCL: hard negatives tilted towards the anchor, debiased, in-batch
    temperature: float = 0.5  # t
    beta: float = 1.0  # tilt of the importance weights exp(beta s / t); 0 gives DCL
    tau_plus: float = 0.1  # class prior of false negatives, in [0, 1); 0 with beta 0 and clamp off is NT-Xent
    clamp: bool = True  # floor the negative term at N exp(-1/t), as HCL's image/main.py (H-SCL's copy: off)
    detach_weights: bool = False  # stop the gradient through the weights (the authors' code keeps it)
    # Synthetic negatives per anchor from its N hardest in-batch negatives (SynCo's six strategies; every count 0,
    # the default: none)
    negatives: InBatchNegativesConfig = field(default_factory=lambda: InBatchNegativesConfig())


def build_hcl(context: BuildContext) -> TwoViewContrastive:
    torch.manual_seed(context.seed)
    m = context.cfg.method
    criterion = HCL(m.temperature, m.beta, m.tau_plus, m.clamp, m.detach_weights)
    negatives, schedule = build_in_batch_synthesis(m.negatives)
    return TwoViewContrastive(build_encoder(context.cfg, context.in_channels), criterion, needs_labels=False,
                              negatives=negatives, schedule=schedule)


def validate_hcl(cfg) -> None:
    positive(cfg, "method.temperature")
    at_least(cfg, "method.beta", 0.0)
    if not 0 <= cfg.method.tau_plus < 1:
        raise ConfigError(f"method.tau_plus={cfg.method.tau_plus} must lie in [0, 1)")
    check_in_batch_negatives(cfg)


METHODS.register("hcl", MethodSpec(HCLConfig, build_hcl, validate_hcl,
                                   "HCL / H-UCL: hard, debiased in-batch negatives without labels (Robinson et al., 2021)",
                                   continual_family="simclr"))
