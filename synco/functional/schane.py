"""SCHaNe's supervised contrastive term with weighted hard negatives (Long et al., 2023), reconstructed.

No code of the paper is public and its loss is known only in outline (../shared/papers/method-notes.md
section 5, UNVERIFIED): a SupCon-like term whose negatives are weighted by how hard they are, used in
fine-tuning as ``(1 - lambda) CE + lambda L_SCHaNe``. For unit embeddings z_i with labels y_i and
s_ij = z_i.z_j / t:

    P(i) = {p != i : y_p = y_i}        N(i) = {k : y_k != y_i}
    l_ip = -log( e^{s_ip} / (e^{s_ip} + sum_{k in N(i)} w_ipk e^{s_ik}) )
    L = mean over anchors with a positive of (1 / |P(i)|) sum_{p in P(i)} l_ip

with mean-one weights (sum_k w_ipk = |N(i)|), larger for harder negatives:

    weighting="anchor"   (default)  w_ik  = |N(i)| softmax_{k in N(i)}(s_ik)   hard = similar to the anchor
    weighting="positive"            w_ipk = |N(i)| softmax_{k in N(i)}(s_pk)   hard = similar to the positive

"anchor" is method-notes section 5's reconstruction and the same tilt as H-SCL(beta = 1) (so its numbers
relate to a loss with public code); "positive" reads the paper's summary ("negatives that have high
similarity with positive samples") literally. Anchors without a positive in the batch add nothing.
"""

from __future__ import annotations

import torch

from synco.functional.hcl import tilted_log_sum

WEIGHTINGS = ("anchor", "positive")


def _positive_weighted_log_sum(logits, weight_source, negative, rows, cols) -> torch.Tensor:
    """log( sum_k e^{w_pk} e^{s_ik} / sum_k e^{w_pk} ) over k in N(i), for the pairs (i, p) = (rows, cols).

    A positive p has i's class, so N(p) = N(i) and the numerators of all pairs are one matrix product
    X X'^T (X = e^{s - m} on the negative columns, X' the same of the weights, m a per-row shift), instead
    of a (pairs, N) tensor: O(N^2) memory.
    """
    lowest = torch.finfo(logits.dtype).min
    shift = logits.detach().masked_fill(~negative, lowest).amax(dim=1, keepdim=True).clamp(min=-1e4)  # (N, 1)
    weight_shift = weight_source.detach().masked_fill(~negative, lowest).amax(dim=1, keepdim=True).clamp(min=-1e4)
    x = torch.exp((logits - shift).masked_fill(~negative, float("-inf")))  # (N, N), 0 off the negatives
    w = torch.exp((weight_source - weight_shift).masked_fill(~negative, float("-inf")))  # (N, N)
    numerator = (x @ w.T)[rows, cols]  # (pairs,) sum_k e^{s_ik - m_i} e^{w_pk - m'_p}
    denominator = w.sum(dim=1)[cols]  # (pairs,) sum_k e^{w_pk - m'_p}
    value = numerator.clamp(min=torch.finfo(logits.dtype).tiny).log() + shift[rows, 0] - denominator.clamp(min=torch.finfo(logits.dtype).tiny).log()
    has_negatives = negative.any(dim=1)[rows]
    return torch.where(has_negatives, value, torch.full_like(value, float("-inf")))


def schane_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    weighting: str = "anchor",
    detach_weights: bool = False,
) -> torch.Tensor:
    """SCHaNe's contrastive term of a batch.

    Args:
        z: (N, D) unit rows, or (B, V, D) views (flattened view-major, labels repeated).
        labels: (N,) or (B,) int64 classes.
        temperature: t (the paper grid-searches it; 0.1 here, SupCon's fine-tuning value).
        weighting: ``"anchor"`` or ``"positive"`` (see the module docstring).
        detach_weights: stop the gradient through the weights.

    Returns:
        Scalar (0 when no anchor has a positive).
    """
    if z.dim() == 3:
        views = z.shape[1]
        z = z.transpose(0, 1).reshape(-1, z.shape[-1])  # (B V, D)
        labels = labels.repeat(views)
    if z.dim() != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"z must be (N, D) with labels (N,), got {tuple(z.shape)} and {tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    with torch.autocast(z.device.type, enabled=False):
        dtype = torch.promote_types(z.dtype, torch.float32)
        z = z.to(dtype)
        logits = z @ z.T / temperature  # (N, N)
        same = labels.unsqueeze(1) == labels.unsqueeze(0)
        positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=z.device)
        negative = ~same
        log_count = negative.sum(dim=1).clamp(min=1).to(dtype).log()  # (N,) log |N(i)|
        rows, cols = positive.nonzero(as_tuple=True)  # the (i, p) pairs
        if rows.numel() == 0:
            return logits.sum() * 0
        weight_source = logits.detach() if detach_weights else logits
        if weighting == "anchor":
            log_negatives = (tilted_log_sum(logits, weight_source, negative) + log_count)[rows]  # (pairs,)
        else:
            log_negatives = _positive_weighted_log_sum(logits, weight_source, negative, rows, cols) + log_count[rows]
        s = logits[rows, cols]
        pair_loss = torch.logaddexp(s, log_negatives) - s  # (pairs,) -inf negatives (none): 0
        per_anchor = torch.zeros(len(labels), dtype=dtype, device=z.device).index_add(0, rows, pair_loss)
        counts = positive.sum(dim=1)
        has = counts > 0
        return (per_anchor[has] / counts[has]).mean()
