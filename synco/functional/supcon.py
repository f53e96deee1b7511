"""SupCon, the supervised contrastive loss L_out of Khosla et al. (2020), as the authors' ``SupConLoss`` computes it.

For the V views of B images, flattened view-major into I = B V anchors z_i with labels y_i:

    A(i) = I \\ {i}          P(i) = {p in A(i) : y_p = y_i}
    L = (1 / |I|) sum_i  -(t / t_base) (1 / |P(i)|) sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) )

Details kept from the authors' code (HobbitLong/SupContrast ``losses.py``): an anchor without positives
contributes 0 but still counts in the mean over anchors (|P(i)| is clamped to 1); the factor t / t_base
(1 with the defaults 0.07 / 0.07, 1.43 for the README's t = 0.1); ``mask`` (B, B) may replace the labels and
acts as float weights of the positives (it may be asymmetric); ``contrast_mode="one"`` uses only view 0 as
anchors, against all views. ``labels=None`` and ``mask=None`` make the other view the only positive, which
is NT-Xent. The log-softmax runs as log-sum-exp (the authors subtract the row maximum first: the same
numbers).
"""

from __future__ import annotations

import torch

CONTRAST_MODES = ("all", "one")


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    contrast_mode: str = "all",
    synthetic_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """SupCon L_out of a batch.

    Args:
        features: (B, V, D) unit rows, V >= 1 views of each image.
        labels: optional (B,) int64 classes; same-class views are positives.
        mask: optional (B, B) float, mask[i, j] weighs image j's views as positives of image i's
            (instead of ``labels``).
        temperature: t.
        base_temperature: t_base; the loss is scaled by t / t_base.
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (view 0 only).
        synthetic_logits: optional (A, S) un-tempered logits z_i.s of each anchor's synthetic negatives (A = B V
            anchors view-major, or B with ``"one"``), detached vectors made from other-class rows: they join
            anchor i's denominator only, sum_{a in A(i)} exp(z_i.z_a / t) + sum_s exp(z_i.s / t), as SynCo's do.

    Returns:
        Scalar mean over the anchors.

    Raises:
        ValueError: wrong shapes, both ``labels`` and ``mask``, an unknown mode, a non-positive temperature.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be (B, V, D), got {tuple(features.shape)}")
    if labels is not None and mask is not None:
        raise ValueError("give labels or mask, not both")
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(f"contrast_mode must be one of {CONTRAST_MODES}, got {contrast_mode!r}")
    if temperature <= 0 or base_temperature <= 0:
        raise ValueError(f"temperatures must be positive, got {temperature} and {base_temperature}")
    batch, views, _ = features.shape
    with torch.autocast(features.device.type, enabled=False):  # softmax over B V candidates in float32 at least
        dtype = torch.promote_types(features.dtype, torch.float32)
        contrast = features.to(dtype).transpose(0, 1).reshape(batch * views, -1)  # (B V, D) view-major
        if mask is None:
            if labels is None:
                mask = torch.eye(batch, dtype=dtype, device=features.device)  # (B, B) the image itself
            else:
                if labels.shape != (batch,):
                    raise ValueError(f"labels must be (B,) = ({batch},), got {tuple(labels.shape)}")
                mask = (labels.view(-1, 1) == labels.view(1, -1)).to(dtype)  # (B, B)
        elif mask.shape != (batch, batch):
            raise ValueError(f"mask must be (B, B) = ({batch}, {batch}), got {tuple(mask.shape)}")
        anchor_views = views if contrast_mode == "all" else 1
        anchors = contrast[: batch * anchor_views]  # (A, D), A = B V or B
        logits = anchors @ contrast.T / temperature  # (A, B V)
        positives = mask.to(dtype).repeat(anchor_views, views)  # (A, B V)
        is_self = torch.zeros_like(positives, dtype=torch.bool)
        rows = torch.arange(anchors.shape[0], device=features.device)
        is_self[rows, rows] = True  # anchor i is contrast row i
        positives = positives.masked_fill(is_self, 0)
        candidates = logits.masked_fill(is_self, float("-inf"))  # (A, B V)
        if synthetic_logits is not None:
            if synthetic_logits.dim() != 2 or synthetic_logits.shape[0] != anchors.shape[0]:
                raise ValueError(f"synthetic_logits must be (A, S) with A = {anchors.shape[0]} anchors, got "
                                 f"{tuple(synthetic_logits.shape)}")
            candidates = torch.cat([candidates, synthetic_logits.to(dtype) / temperature], dim=1)  # (A, B V + S)
        log_denominator = candidates.logsumexp(dim=1, keepdim=True)  # (A, 1)
        log_prob = logits - log_denominator  # (A, B V)
        count = positives.sum(dim=1)
        count = torch.where(count < 1e-6, torch.ones_like(count), count)  # anchors without positives: 0
        mean_log_prob = (positives * log_prob.masked_fill(is_self, 0)).sum(dim=1) / count  # (A,)
        return -(temperature / base_temperature) * mean_log_prob.mean()
