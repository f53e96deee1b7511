"""Hard-negative pipeline stages: selection and synthesis."""

from synco.negatives.mochi import mochi
from synco.negatives.module import STRATEGIES, SyntheticNegatives, SyntheticSample
from synco.negatives.select import mask_logits, select_hardest

__all__ = [
    "STRATEGIES",
    "SyntheticNegatives",
    "SyntheticSample",
    "mask_logits",
    "mochi",
    "select_hardest",
]
