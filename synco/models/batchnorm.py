"""Single-process stand-in for MoCo's shuffle-BN: split batch norm plus a shuffled key batch.

MoCo shuffles the key batch across GPUs so that each GPU's batch-norm statistics for a key come from
other images than its query's, which stops the network from "cheating" through BN statistics. On one
process the same effect comes from splitting the batch into G groups with their own BN statistics
(MoCo's CIFAR demo, ``SplitBatchNorm``) and permuting the key batch before the key encoder, so that
query i and key i sit in different groups. With G = 1 this is plain batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are computed per group of B / G images.

    Running statistics are the average over groups, so evaluation matches plain batch norm. The
    parameter and buffer names are BatchNorm2d's, so weights load into unsplit models unchanged.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if not self.training or self.num_splits == 1 or batch % self.num_splits != 0:
            # A ragged batch falls back to whole-batch statistics rather than failing.
            return super().forward(x)
        g = self.num_splits
        if torch.compiler.is_compiling():
            return self._compiled_split_forward(x, g)
        running_mean = self.running_mean.repeat(g)  # (G C,)
        running_var = self.running_var.repeat(g)  # (G C,)
        out = F.batch_norm(
            x.view(batch // g, channels * g, height, width),
            running_mean,
            running_var,
            self.weight.repeat(g),
            self.bias.repeat(g),
            True,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        ).view(batch, channels, height, width)
        self.running_mean.copy_(running_mean.view(g, channels).mean(dim=0))
        self.running_var.copy_(running_var.view(g, channels).mean(dim=0))
        return out

    def _compiled_split_forward(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """The same function as explicit reductions with a closed-form backward, for ``torch.compile``.

        The batch-norm kernel on the folded view compiled to a slow strided reduction, and autograd's
        backward of an explicit ``var_mean`` form re-read the activation for every one of its chained
        reductions (see :class:`_SplitBatchNormFunction`). Eager runs keep ``F.batch_norm``, so their numbers
        do not move.
        """
        out, mean, var = _SplitBatchNormFunction.apply(x, self.weight, self.bias, g, self.eps)
        with torch.no_grad():  # running statistics: per group as F.batch_norm (unbiased variance), then averaged
            batch, _, height, width = x.shape
            count = (batch // g) * height * width
            momentum = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.mean(dim=0))
            self.running_var.mul_(1 - momentum).add_(momentum * (var * count / max(count - 1, 1)).mean(dim=0))
        return out


def _group_sum(values: torch.Tensor, g: int) -> torch.Tensor:
    """(B, C, H, W) -> (G, C): sums over (H, W) per image, then over the B / G images of each group.

    Image b = i G + j is in group j (``x.view(B / G, G C, H, W)``). Summing per image first gives the
    compiler B independent reductions to spread over threads (one stage over (B / G, H, W) gave it C / 16).
    """
    batch, channels = values.shape[:2]
    return values.sum(dim=(2, 3)).view(batch // g, g, channels).sum(dim=0)


def _per_image(group_values: torch.Tensor, batch: int) -> torch.Tensor:
    """(G, C) -> (B, C, 1, 1): each image's row of its group."""
    g, channels = group_values.shape
    return group_values.expand(batch // g, g, channels).reshape(batch, channels, 1, 1)


class _SplitBatchNormFunction(torch.autograd.Function):
    """Training-mode split batch norm, ``y = (x - mu_g) / sqrt(var_g + eps) * w + b`` per group g of B / G images.

    Backward (the standard batch-norm gradient per group, n = B / G * H * W values per statistic, xhat the
    normalised input): ``dx = w / sqrt(var_g + eps) * (dy - mean_g(dy) - xhat * mean_g(dy * xhat))``,
    ``dw = sum(dy * xhat)``, ``db = sum(dy)``: two reductions that read the same inputs (the compiler fuses
    them into one pass) and one elementwise pass, where autograd's derivative of the forward chains three
    dependent reductions over the activation.

    Returns ``(y (B, C, H, W), mean (G, C), biased variance (G, C))``; the statistics carry no gradient.
    Under bf16/fp16 autocast ``x`` and ``dy`` arrive in the low precision; statistics and gradients are
    computed in float32 (as batch norm's own kernels accumulate), ``y`` in the input's dtype (``out_dtype``
    overrides it; benchmarks/bf16_parity.py measures float32 outputs against it).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, g: int, eps: float, out_dtype: torch.dtype | None = None):
        dtype, x_in = x.dtype, x
        x = x.to(torch.promote_types(dtype, weight.dtype))  # a no-op in float32/float64; fused when compiled
        batch, _, height, width = x.shape
        count = (batch // g) * height * width
        mean = _group_sum(x, g) / count  # (G, C)
        centered = x - _per_image(mean, batch)
        var = _group_sum(centered * centered, g) / count  # (G, C), biased, as batch norm normalises
        rstd = torch.rsqrt(var + eps)  # (G, C)
        out = centered * _per_image(rstd * weight, batch) + bias.view(1, -1, 1, 1)
        ctx.save_for_backward(x_in, mean, rstd, weight)  # the input's own dtype: no float32 copy is kept
        ctx.g, ctx.dtype = g, dtype
        ctx.mark_non_differentiable(mean, var)
        return out.to(out_dtype or dtype), mean, var

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        x, mean, rstd, weight = ctx.saved_tensors
        g = ctx.g
        x, grad_out = x.to(mean.dtype), grad_out.to(mean.dtype)
        batch, _, height, width = x.shape
        count = (batch // g) * height * width
        xhat = (x - _per_image(mean, batch)) * _per_image(rstd, batch)
        sum_dy = _group_sum(grad_out, g)  # (G, C)
        sum_dy_xhat = _group_sum(grad_out * xhat, g)  # (G, C)
        grad_x = _per_image(rstd * weight, batch) * (
            grad_out - _per_image(sum_dy / count, batch) - xhat * _per_image(sum_dy_xhat / count, batch))
        return grad_x.to(ctx.dtype), sum_dy_xhat.sum(dim=0), sum_dy.sum(dim=0), None, None, None


def convert_to_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every BatchNorm2d of ``module`` by :class:`SplitBatchNorm2d` (in place)."""
    if num_splits <= 1:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            split = SplitBatchNorm2d(
                child.num_features, num_splits, eps=child.eps, momentum=child.momentum,
                affine=child.affine, track_running_stats=child.track_running_stats,
            )
            split.load_state_dict(child.state_dict())
            setattr(module, name, split)
        else:
            convert_to_split_batchnorm(child, num_splits)
    return module
