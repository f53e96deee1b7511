"""When synthesis runs and with how many negatives: the schedule every method with synthetic negatives shares.

    active(e)    warmup_epochs <= e < stop_epoch          (stop_epoch None: to the end)
    counts(e)    0 outside; the full counts; or with a ramp over the E = stop_epoch - warmup_epochs synthesis
                 epochs, round(c (k + 1) / E) ("up") or round(c (E - k) / E) ("down") in the k-th of them

The counts are a function of the epoch alone, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``method.negatives.ramp``'s values.
RAMPS = ("none", "up", "down")
#: The six synthesis counts, in the order of ``SyntheticNegatives.counts``.
COUNT_NAMES = ("num_interpolate", "num_extrapolate", "num_mixup", "num_noise", "num_perturb", "num_adversarial")


@dataclass(frozen=True)
class SynthesisSchedule:
    """The synthesis epochs and counts of a run (``method.negatives.warmup_epochs``, ``stop_epoch``, ``ramp``)."""

    full_counts: tuple[int, ...]
    warmup_epochs: int = 0
    stop_epoch: int | None = None
    ramp: str = "none"

    def __post_init__(self) -> None:
        if self.ramp not in RAMPS:
            raise ValueError(f"ramp must be one of {RAMPS}, got {self.ramp!r}")
        if self.stop_epoch is not None and self.stop_epoch <= self.warmup_epochs:
            raise ValueError(f"stop_epoch={self.stop_epoch} must be after warmup_epochs={self.warmup_epochs}")
        if self.ramp != "none" and self.stop_epoch is None:
            raise ValueError("a ramp needs a stop_epoch (it spans the synthesis epochs)")

    def active(self, epoch: int) -> bool:
        """Whether synthetic negatives are used in ``epoch`` (0-based)."""
        return epoch >= self.warmup_epochs and (self.stop_epoch is None or epoch < self.stop_epoch)

    def counts(self, epoch: int) -> tuple[int, ...]:
        """The six counts active in ``epoch``."""
        if not self.active(epoch):
            return tuple(0 for _ in self.full_counts)
        if self.ramp == "none":
            return tuple(self.full_counts)
        span, k = self.stop_epoch - self.warmup_epochs, epoch - self.warmup_epochs
        share = (k + 1) / span if self.ramp == "up" else (span - k) / span
        return tuple(round(c * share) for c in self.full_counts)

    def log(self, epoch: int) -> dict:
        """``train/synthetic``, ``train/synthetic_per_query`` and the six counts of ``epoch``."""
        counts = self.counts(epoch)
        return {"train/synthetic": self.active(epoch), "train/synthetic_per_query": sum(counts),
                **{f"train/{name}": count for name, count in zip(COUNT_NAMES, counts)}}


def check_schedule(warmup_epochs: int, stop_epoch: int | None, ramp: str) -> None:
    """The configuration's rules for ``method.negatives.{warmup_epochs, stop_epoch, ramp}``.

    Raises:
        ValueError: naming the keys (the configuration reports it as a configuration error).
    """
    if ramp not in RAMPS:
        raise ValueError(f"method.negatives.ramp={ramp!r} is not allowed; choose among {list(RAMPS)}")
    if stop_epoch is not None and stop_epoch <= warmup_epochs:
        raise ValueError(f"method.negatives.stop_epoch={stop_epoch} must be after method.negatives.warmup_epochs="
                         f"{warmup_epochs} (synthesis runs in epochs [warmup_epochs, stop_epoch))")
    if ramp != "none" and stop_epoch is None:
        raise ValueError(f"method.negatives.ramp={ramp} needs method.negatives.stop_epoch (the ramp spans the "
                         "synthesis epochs)")
