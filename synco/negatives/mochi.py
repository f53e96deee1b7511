"""MoCHI (Kalantidis et al., 2020) as a negative generator, not a method.

MoCHI(N, s, s') mixes s pairs of hard negatives (SynCo type 3, gamma ~ U(0, 1)) and s' query-negative
pairs with query weight below 0.5 (SynCo type 1, alpha ~ U(0, 0.5)) from the N hardest negatives.
"""

from __future__ import annotations

from synco.negatives.module import SyntheticNegatives


def mochi(num_hard: int = 1024, num_mix: int = 1024, num_query_mix: int = 128) -> SyntheticNegatives:
    """Return the :class:`SyntheticNegatives` that implements MoCHI(N, s, s').

    Args:
        num_hard: N, hardest queue negatives to mix.
        num_mix: s, negative-negative mixes per query (``h = a n_i + (1 - a) n_j``, a ~ U(0, 1)).
        num_query_mix: s', query-negative mixes per query (``h' = b q + (1 - b) n_j``, b ~ U(0, 0.5)).
    """
    return SyntheticNegatives(
        num_hard=num_hard,
        num_interpolate=num_query_mix,
        num_extrapolate=0,
        num_mixup=num_mix,
        num_noise=0,
        num_perturb=0,
        num_adversarial=0,
        alpha_max=0.5,
    )
