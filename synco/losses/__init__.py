"""Loss modules: hyperparameters held in a module, the maths in ``synco.functional``.

Each module's ``forward`` delegates to the same-named function, which the tests target. Registered by
name in ``synco.registry.LOSSES``.
"""

from __future__ import annotations

import torch
from torch import nn

from synco.functional import (
    hcl_loss,
    hscl_loss,
    info_nce_loss,
    nt_xent_loss,
    nt_xent_loss_local,
    schane_loss,
    supcon_loss,
)
from synco.functional.queue_supervised import hscl_queue_loss, supcon_queue_loss
from synco.models.compiled import CompilableForward
from synco.registry import LOSSES


class TemperatureLoss(CompilableForward, nn.Module):
    """A loss whose one hyperparameter is its temperature (checked positive).

    Subclasses write their maths in ``eager_forward``; ``compile_forward()`` (``trainer.compile``) fuses it.
    """

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

    def eager_forward(self, query: torch.Tensor, key: torch.Tensor, queue_logits: torch.Tensor,
                synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce_loss(query, key, queue_logits, synthetic_logits, self.temperature)


@LOSSES.register("nt_xent")
class NTXent(TemperatureLoss):
    """SimCLR's NT-Xent over in-batch negatives: :func:`synco.functional.nt_xent_loss`, or with the global
    batch given (``all_z1``, ``all_z2``, this process's ``offset``) :func:`synco.functional.nt_xent_loss_local`."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__(temperature)

    def eager_forward(self, z1: torch.Tensor, z2: torch.Tensor, all_z1: torch.Tensor | None = None,
                all_z2: torch.Tensor | None = None, offset: int = 0,
                synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        if all_z1 is None:
            return nt_xent_loss(z1, z2, self.temperature, synthetic_logits)
        return nt_xent_loss_local(z1, z2, all_z1, all_z2, offset, self.temperature, synthetic_logits)


@LOSSES.register("hcl")
class HCL(TemperatureLoss):
    """H-UCL over the global batch's two views: :func:`synco.functional.hcl_loss` (labels ignored)."""

    def __init__(self, temperature: float = 0.5, beta: float = 1.0, tau_plus: float = 0.1, clamp: bool = True,
                 detach_weights: bool = False) -> None:
        super().__init__(temperature)
        self.beta, self.tau_plus, self.clamp, self.detach_weights = beta, tau_plus, clamp, detach_weights

    def eager_forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None,
                      synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        return hcl_loss(z1, z2, self.temperature, self.beta, self.tau_plus, self.clamp, self.detach_weights,
                        synthetic_logits)


@LOSSES.register("supcon")
class SupCon(TemperatureLoss):
    """SupCon L_out of two views: :func:`synco.functional.supcon_loss` on ``stack([z1, z2], 1)``."""

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07, contrast_mode: str = "all") -> None:
        super().__init__(temperature)
        self.base_temperature, self.contrast_mode = base_temperature, contrast_mode

    def eager_forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None,
                      synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        return supcon_loss(torch.stack([z1, z2], dim=1), labels, None, self.temperature, self.base_temperature,
                           self.contrast_mode, synthetic_logits)


@LOSSES.register("hscl")
class HSCL(TemperatureLoss):
    """H-SCL(beta) or H-SCL(tau) of two views: :func:`synco.functional.hscl_loss`; beta = 0 is SCL."""

    def __init__(self, temperature: float = 0.5, beta: float = 1.0, threshold: float | None = None,
                 detach_weights: bool = False) -> None:
        super().__init__(temperature)
        self.beta, self.threshold, self.detach_weights = beta, threshold, detach_weights

    def eager_forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor,
                      synthetic_logits: torch.Tensor | None = None) -> torch.Tensor:
        return hscl_loss(z1, z2, labels, self.temperature, self.beta, self.threshold, self.detach_weights,
                         synthetic_logits)


@LOSSES.register("schane")
class SCHaNe(TemperatureLoss):
    """SCHaNe's contrastive term of one batch of embeddings: :func:`synco.functional.schane_loss`."""

    def __init__(self, temperature: float = 0.1, weighting: str = "anchor", detach_weights: bool = False) -> None:
        super().__init__(temperature)
        self.weighting, self.detach_weights = weighting, detach_weights

    def eager_forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return schane_loss(z, labels, self.temperature, self.weighting, self.detach_weights)


@LOSSES.register("supcon_queue")
class SupConQueue(TemperatureLoss):
    """SupCon of queries against batch keys + a label-aware queue: :func:`supcon_queue_loss`."""

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07) -> None:
        super().__init__(temperature)
        self.base_temperature = base_temperature

    def eager_forward(self, query, contrast, labels, contrast_labels) -> torch.Tensor:
        return supcon_queue_loss(query, contrast, labels, contrast_labels, self.temperature, self.base_temperature)


@LOSSES.register("hscl_queue")
class HSCLQueue(TemperatureLoss):
    """H-SCL of queries against batch keys + a label-aware queue: :func:`hscl_queue_loss`."""

    def __init__(self, temperature: float = 0.5, beta: float = 1.0, threshold: float | None = None,
                 detach_weights: bool = False) -> None:
        super().__init__(temperature)
        self.beta, self.threshold, self.detach_weights = beta, threshold, detach_weights

    def eager_forward(self, query, contrast, labels, contrast_labels) -> torch.Tensor:
        return hscl_queue_loss(query, contrast, labels, contrast_labels, self.temperature, self.beta,
                               self.threshold, self.detach_weights)


__all__ = ["HCL", "HSCL", "HSCLQueue", "InfoNCE", "NTXent", "SCHaNe", "SupCon", "SupConQueue", "TemperatureLoss"]
