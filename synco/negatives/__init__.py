"""Hard-negative pipeline stages: sources, selection and synthesis."""

from synco.negatives.mochi import mochi
from synco.negatives.module import COUNT_KEYS, STRATEGIES, SyntheticNegatives, SyntheticSample
from synco.negatives.select import check_num_hard, mask_logits, select_hardest
from synco.negatives.sources import NegativePool, batch_pool, queue_pool

__all__ = [
    "COUNT_KEYS",
    "NegativePool",
    "STRATEGIES",
    "SyntheticNegatives",
    "SyntheticSample",
    "check_num_hard",
    "batch_pool",
    "mask_logits",
    "mochi",
    "queue_pool",
    "select_hardest",
]
