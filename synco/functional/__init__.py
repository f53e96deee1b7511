"""Pure tensor maths: no state, no configuration."""

from synco.functional.info_nce import info_nce_logits, info_nce_loss

__all__ = ["info_nce_logits", "info_nce_loss"]
