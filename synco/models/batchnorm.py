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
        """The same function written as explicit reductions, for ``torch.compile``.

        ``x.view(B / G, G C, H, W)`` puts image b = i G + j in group j; here that is the view
        (B / G, G, C, H, W) with statistics over dims (0, 3, 4). Inductor fuses these reductions well, while
        the batch-norm kernel on the folded view compiled to a slow strided reduction (the split-BN step
        barely gained from compilation). Eager runs keep ``F.batch_norm``, so their numbers do not move.
        """
        batch, channels, height, width = x.shape
        xg = x.view(batch // g, g, channels, height, width)  # (B/G, G, C, H, W)
        var, mean = torch.var_mean(xg, dim=(0, 3, 4), correction=0, keepdim=True)  # (1, G, C, 1, 1), biased
        weight = self.weight.view(1, 1, channels, 1, 1)
        bias = self.bias.view(1, 1, channels, 1, 1)
        out = ((xg - mean) * torch.rsqrt(var + self.eps) * weight + bias).view(batch, channels, height, width)
        with torch.no_grad():  # running statistics: per group as F.batch_norm (unbiased variance), then averaged
            count = (batch // g) * height * width
            momentum = self.momentum if self.momentum is not None else 0.1
            group_mean = mean.view(g, channels).mean(dim=0)
            group_var = (var.view(g, channels) * count / max(count - 1, 1)).mean(dim=0)
            self.running_mean.mul_(1 - momentum).add_(momentum * group_mean)
            self.running_var.mul_(1 - momentum).add_(momentum * group_var)
        return out


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
