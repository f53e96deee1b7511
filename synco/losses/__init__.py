"""Loss modules: hyperparameters held in a module, the maths in ``synco.functional``.

Each module's ``forward`` delegates to the same-named function, which the tests target. Registered by
name in ``synco.registry.LOSSES``.
"""

from __future__ import annotations

import torch
from torch import nn

from synco.functional import info_nce_loss, nt_xent_loss, nt_xent_loss_local
from synco.registry import LOSSES


class TemperatureLoss(nn.Module):
    """A loss whose one hyperparameter is its temperature (checked positive)."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature


@LOSSES.register("info_nce")
class InfoNCE(TemperatureLoss):
    """MoCo's InfoNCE with queue (and SynCo's synthetic) negatives: :func:`synco.functional.info_nce_loss`."""

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__(temperature)

    def forward(self, query: torch.Tensor, key: torch.Tensor, queue_logits: torch.Tensor,
                synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce_loss(query, key, queue_logits, synthetic_logits, self.temperature)


@LOSSES.register("nt_xent")
class NTXent(TemperatureLoss):
    """SimCLR's NT-Xent over in-batch negatives: :func:`synco.functional.nt_xent_loss`, or with the global
    batch given (``all_z1``, ``all_z2``, this process's ``offset``) :func:`synco.functional.nt_xent_loss_local`."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__(temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, all_z1: torch.Tensor | None = None,
                all_z2: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
        if all_z1 is None:
            return nt_xent_loss(z1, z2, self.temperature)
        return nt_xent_loss_local(z1, z2, all_z1, all_z2, offset, self.temperature)


__all__ = ["InfoNCE", "NTXent", "TemperatureLoss"]
