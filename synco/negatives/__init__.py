"""Hard-negative pipeline stages: selection and synthesis."""

from synco.negatives.mochi import mochi
from synco.negatives.module import COUNT_KEYS, STRATEGIES, SyntheticNegatives, SyntheticSample
from synco.negatives.select import check_num_hard, mask_logits, select_hardest

__all__ = [
    "COUNT_KEYS",
    "STRATEGIES",
    "SyntheticNegatives",
    "SyntheticSample",
    "check_num_hard",
    "mask_logits",
    "mochi",
    "select_hardest",
]
