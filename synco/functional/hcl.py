"""HCL / H-UCL, hard negatives without labels (Robinson et al., 2021), as the authors' ``criterion(estimator="hard")``.

For 2B unit embeddings z = [z1; z2], anchor i, its other view i+ and its N = 2B - 2 negatives j (every row
but i and i+), with s_ij = z_i.z_j / t:

    pos_i   = exp(s_ii+)
    imp_ij  = exp(beta s_ij)                                   importance weights (tilt towards the anchor)
    rw_i    = sum_j imp_ij exp(s_ij) / mean_j imp_ij           = N x (importance-weighted mean of exp(s_ij))
    Ng_i    = (rw_i - tau_plus N pos_i) / (1 - tau_plus)       debiasing for false negatives (DCL)
    Ng_i    = max(Ng_i, N exp(-1 / t))                         the clamp (``clamp=True``)
    L       = mean_i -log( pos_i / (pos_i + Ng_i) )

Computed in log space: log rw_i = logsumexp_j((1 + beta) s_ij) - logsumexp_j(beta s_ij) + log N. Special
cases: beta = 0 is DCL; beta = 0, tau_plus = 0 (clamp off) is NT-Xent. Without the clamp, tau_plus > 0 can
make Ng_i negative and the loss NaN, as in the authors' code (H-SCL's copy comments the clamp out; HCL's
``image/main.py`` keeps it: the default here).
"""

from __future__ import annotations

import math

import torch


def pair_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s (2B, 2B), positive column (2B,), negative mask (2B, 2B)) of the stacked views, in float32 at least."""
    batch = z1.shape[0]
    dtype = torch.promote_types(z1.dtype, torch.float32)
    z = torch.cat([z1, z2]).to(dtype)  # (2B, D)
    logits = z @ z.T / temperature  # (2B, 2B)
    rows = torch.arange(2 * batch, device=z.device)
    positive = (rows + batch) % (2 * batch)  # (2B,) the other view
    negative = torch.ones_like(logits, dtype=torch.bool)
    negative[rows, rows] = False
    negative[rows, positive] = False
    return logits, positive, negative


def hcl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    beta: float = 1.0,
    tau_plus: float = 0.1,
    clamp: bool = True,
    detach_weights: bool = False,
    synthetic_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """H-UCL of a batch (mean over the 2B anchors).

    Args:
        z1, z2: (B, D) unit rows, the two views of B images (B >= 2).
        temperature: t (0.5 in the authors' scripts).
        beta: concentration of the tilt, >= 0 (1.0 by default, the best of their STL-10 table).
        tau_plus: class prior of false negatives, in [0, 1) (0.1 by default).
        clamp: floor Ng at N exp(-1/t) as HCL's ``image/main.py`` does.
        detach_weights: stop the gradient through imp_ij (the authors' HCL code keeps it).
        synthetic_logits: optional (2B, S) un-tempered logits z_i.s of each anchor's synthetic negatives (anchors
            ordered [z1; z2]; detached vectors). They join the denominator only, beside the debiased, reweighted
            estimate: L = mean_i -log( pos_i / (pos_i + Ng_i + sum_s exp(z_i.s / t)) ); the estimate itself, its
            debiasing and its clamp are HCL's, over the real negatives.

    Returns:
        Scalar.
    """
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must be (B, D) with B >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    _check(temperature, beta, tau_plus)
    with torch.autocast(z1.device.type, enabled=False):
        logits, positive_column, negative = pair_logits(z1, z2, temperature)
        count = 2 * z1.shape[0] - 2  # N
        positive = logits.gather(1, positive_column.unsqueeze(1)).squeeze(1)  # (2B,) log pos_i
        weights = beta * (logits.detach() if detach_weights else logits)
        log_ng = tilted_log_sum(logits, weights, negative) + math.log(count)  # (2B,) log rw_i
        log_ng, valid = debias(log_ng, positive, tau_plus, count)
        if clamp:
            floor = math.log(count) - 1 / temperature
            log_ng = torch.clamp(torch.where(valid, log_ng, torch.full_like(log_ng, floor)), min=floor)
        else:
            log_ng = torch.where(valid, log_ng, torch.full_like(log_ng, float("nan")))
        if synthetic_logits is not None:
            if synthetic_logits.dim() != 2 or synthetic_logits.shape[0] != logits.shape[0]:
                raise ValueError(f"synthetic_logits must be (2B, S) = ({logits.shape[0]}, S), got "
                                 f"{tuple(synthetic_logits.shape)}")
            log_ng = torch.logaddexp(log_ng, (synthetic_logits.to(logits.dtype) / temperature).logsumexp(dim=1))
        return (torch.logaddexp(positive, log_ng) - positive).mean()


def tilted_log_sum(logits: torch.Tensor, weights: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log( sum_j w_j e^{s_j} / sum_j w_j ) over the kept columns, w_j = exp(weights_j): the log of the tilted
    mean. Rows with no kept column give -inf. Shapes (R, C) -> (R,)."""
    lowest = float("-inf")
    numerator = (weights + logits).masked_fill(~keep, lowest).logsumexp(dim=1)
    denominator = weights.masked_fill(~keep, lowest).logsumexp(dim=1)
    return torch.where(keep.any(dim=1), numerator - denominator, torch.full_like(numerator, lowest))


def debias(log_ng: torch.Tensor, positive: torch.Tensor, tau_plus: float, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log( (e^{log_ng} - tau_plus N e^{positive}) / (1 - tau_plus) ), where that difference is positive).

    Where it is not, the value returned is finite but meaningless: the caller clamps (as the authors' code,
    whose clamp lifts a negative Ng to its floor) or returns NaN (their log of a negative number).
    """
    if tau_plus == 0:
        return log_ng, torch.ones_like(log_ng, dtype=torch.bool)
    ratio = positive + math.log(tau_plus * count) - log_ng  # log(b / a) of a - b
    valid = ratio < 0
    safe = torch.where(valid, ratio, torch.full_like(ratio, -1.0))  # keeps the unused branch's gradient finite
    return log_ng + torch.log1p(-torch.exp(safe)) - math.log(1 - tau_plus), valid


def _check(temperature: float, beta: float, tau_plus: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    if not 0 <= tau_plus < 1:
        raise ValueError(f"tau_plus must lie in [0, 1), got {tau_plus}")
