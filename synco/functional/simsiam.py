"""SimSiam's loss (Chen & He, 2021): symmetrised negative cosine with a stop-gradient on the projections.

    L = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2,   each cosine averaged over the batch

as the authors' ``main_simsiam.py`` (``nn.CosineSimilarity(dim=1)``, ``z.detach()`` in the model's forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """SimSiam's symmetrised negative cosine; lies in [-1, 1], -1 when predictions match the projections.

    Args:
        p1, p2: (B, D) predictor outputs of the two views, not normalised.
        z1, z2: (B, D) projections of the two views, not normalised; no gradient flows into them.

    Returns:
        The scalar loss.
    """
    return -(F.cosine_similarity(p1, z2.detach(), dim=1).mean() + F.cosine_similarity(p2, z1.detach(), dim=1).mean()) / 2
