"""NT-Xent, SimCLR's normalised-temperature cross-entropy over in-batch negatives (Chen et al., 2020).

For 2B unit embeddings ``z = [z1; z2]`` and anchor i with positive j (the other view of the same image):

    l_i = -log( exp(z_i.z_j / t) / sum_{k != i} exp(z_i.z_k / t) )        L = mean over the 2B anchors

computed as a cross-entropy over the 2B - 1 other embeddings (log-sum-exp, never exp then log).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                 synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent of a whole batch.

    Args:
        z1, z2: (B, D) unit rows; row i of both is one image's two views.
        temperature: t (0.5 in SimCLR's CIFAR-10 setting).
        synthetic_logits: optional (2B, S) un-tempered logits of each anchor (rows of ``[z1; z2]``) against
            synthetic negatives: they join the denominator only, ``+ sum_s exp(z_i.s / t)``, as in SynCo.

    Returns:
        Scalar mean over the 2B anchors.
    """
    return nt_xent_loss_local(z1, z2, z1, z2, 0, temperature, synthetic_logits)


def nt_xent_loss_local(
    z1: torch.Tensor, z2: torch.Tensor, all_z1: torch.Tensor, all_z2: torch.Tensor, offset: int,
    temperature: float = 0.5, synthetic_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """NT-Xent of one process's anchors against the embeddings of the global batch.

    With W processes, each passing its b rows and the gathered (W b) rows of every rank
    (``synco.distributed.all_gather_with_grad``), the mean over ranks of the results is
    :func:`nt_xent_loss` of the whole batch, and so are the gradients (DDP averages them).

    Args:
        z1, z2: (b, D) this process's unit embeddings of the two views.
        all_z1, all_z2: (B, D) those of the whole batch, rows ``offset:offset + b`` being this process's.
        offset: position of this process's rows in the global batch.
        temperature: t.
        synthetic_logits: optional (2b, S) un-tempered logits of this process's anchors ``[z1; z2]`` against
            synthetic negatives (denominator only).

    Returns:
        Scalar mean over this process's 2b anchors.
    """
    # The logits run in float32 (float64 stays float64) even under autocast: bf16 carries ~3 significant
    # digits, too few for a softmax over 2B - 1 candidates at small temperatures.
    with torch.autocast(z1.device.type, enabled=False):
        return _nt_xent_local(z1, z2, all_z1, all_z2, offset, temperature, synthetic_logits)


def _nt_xent_local(z1, z2, all_z1, all_z2, offset, temperature, synthetic_logits=None) -> torch.Tensor:
    b, big_b = z1.shape[0], all_z1.shape[0]
    dtype = torch.promote_types(z1.dtype, torch.float32)
    anchors = torch.cat([z1, z2]).to(dtype)  # (2b, D)
    candidates = torch.cat([all_z1, all_z2]).to(dtype)  # (2B, D)
    logits = torch.einsum("ad,nd->an", anchors, candidates) / temperature  # (2b, 2B)
    own = torch.arange(b, device=z1.device) + offset  # (b,) global rows of this process's images
    self_column = torch.cat([own, own + big_b])  # (2b,) where each anchor meets itself
    positive_column = torch.cat([own + big_b, own])  # (2b,) its other view
    logits = logits.masked_fill(
        F.one_hot(self_column, 2 * big_b).bool(), torch.finfo(dtype).min
    )  # an anchor is never its own negative
    if synthetic_logits is not None and synthetic_logits.shape[1] > 0:  # denominator only, after the 2B columns
        logits = torch.cat([logits, synthetic_logits.to(dtype) / temperature], dim=1)  # (2b, 2B + S)
    return F.cross_entropy(logits, positive_column)
