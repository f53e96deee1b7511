"""Methods: compositions of encoders, memories, negatives and losses."""

from synco.methods.moco import Encoder, MoCo

__all__ = ["Encoder", "MoCo"]
