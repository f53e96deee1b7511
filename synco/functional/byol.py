"""BYOL's loss (Grill et al., 2020): the online predictions regress the momentum target's projections.

    L = D(p1, sg t2) + D(p2, sg t1),   D(a, b) = 2 - 2 cos(a, b), each a mean over the batch

the sum of the two directions, as solo-learn's and CaSSLe's BYOL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetrised regression loss, in [0, 8].

    Args:
        p1, p2: (B, D) online predictions of the two views, not normalised.
        t1, t2: (B, D) target projections of the two views; no gradient flows into them.
    """
    return (2 - 2 * F.cosine_similarity(p1, t2.detach(), dim=-1).mean()) + (
        2 - 2 * F.cosine_similarity(p2, t1.detach(), dim=-1).mean())
