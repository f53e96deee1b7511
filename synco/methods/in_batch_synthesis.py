"""SynCo's synthetic negatives for the in-batch methods: the ``method.negatives`` block, its builder, its checks.

SimCLR, HCL, SupCon and H-SCL share it: per anchor, synthetic negatives made from its N hardest in-batch
negatives (``synco.negatives.batch_pool``: never the anchor's own two views; with labels, never a view of its
class), detached, in the loss's denominator only, on the schedule of ``synco.negatives.schedule``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from synco.checks import ConfigError, at_least
from synco.negatives import COUNT_KEYS, SyntheticNegatives
from synco.negatives.schedule import SynthesisSchedule, check_schedule


@dataclass
class InBatchNegativesConfig:
    """``method.negatives`` of an in-batch method: SynCo's keys, N among the 2B - 2 in-batch negatives."""

    num_hard: int = 64  # N, hardest in-batch negatives of each anchor the synthetic ones are made from (<= 2B - 2)
    num_interpolate: int = 0  # type 1 per anchor: normalize(alpha z + (1 - alpha) n)
    num_extrapolate: int = 0  # type 2: normalize(n + beta (n - z))
    num_mixup: int = 0  # type 3: normalize(gamma n_i + (1 - gamma) n_j)
    num_noise: int = 0  # type 4: normalize(n + e), e ~ N(0, sigma^2 I)
    num_perturb: int = 0  # type 5: normalize(n + delta z)
    num_adversarial: int = 0  # type 6: normalize(n + eta sign(z))
    alpha_max: float = 0.5  # alpha ~ U(0, alpha_max)
    beta_max: float = 1.5  # beta ~ U(1, beta_max)
    sigma: float = 0.01  # noise scale of type 4
    delta: float = 0.01  # step of type 5
    eta: float = 0.01  # step of type 6
    extrapolation: str = "paper"  # paper: Eq. 5; reference: the authors' code
    warmup_epochs: int = 0  # epochs without synthesis first
    stop_epoch: Optional[int] = None  # synthesis stops before this epoch; None: never
    ramp: str = "none"  # none, up, down: counts scaled linearly over the synthesis epochs (needs stop_epoch)


def build_in_batch_synthesis(neg) -> tuple[SyntheticNegatives, SynthesisSchedule]:
    """The synthesis module and its schedule from a ``method.negatives`` block."""
    settings = {k: v for k, v in neg.items() if k not in ("warmup_epochs", "stop_epoch", "ramp")}
    negatives = SyntheticNegatives(**settings)
    return negatives, SynthesisSchedule(negatives.counts, neg.warmup_epochs, neg.stop_epoch, neg.ramp)


def synthesizes(cfg) -> bool:
    """Whether ``method.negatives`` asks for any synthetic negative."""
    return sum(cfg.method.negatives[key] for key in COUNT_KEYS) > 0


def check_in_batch_negatives(cfg) -> None:
    """Counts and N non-negative, a valid schedule, and N within the 2B - 2 in-batch negatives of an anchor."""
    neg = cfg.method.negatives
    for key in ("num_hard", *COUNT_KEYS, "warmup_epochs"):
        at_least(cfg, f"method.negatives.{key}", 0)
    try:
        check_schedule(neg.warmup_epochs, neg.stop_epoch, neg.ramp)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    candidates = 2 * cfg.train.batch_size - 2
    if synthesizes(cfg) and not 1 <= neg.num_hard <= candidates:
        raise ConfigError(f"method.negatives.num_hard={neg.num_hard} must lie in [1, {candidates}]: each anchor has "
                          f"2 x train.batch_size - 2 = {candidates} in-batch negatives")
