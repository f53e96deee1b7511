"""Pure tensor maths: no state, no configuration."""

from synco.functional.info_nce import info_nce_logits, info_nce_loss
from synco.functional.nt_xent import nt_xent_loss, nt_xent_loss_local

__all__ = ["info_nce_logits", "info_nce_loss", "nt_xent_loss", "nt_xent_loss_local"]
