"""Methods: compositions of encoders, memories, negatives and losses, behind one contract (base.py)."""

from synco.methods.base import BuildContext, Method, MethodSpec, StepContext, build_method
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.moco import MoCo
from synco.methods.simclr import SimCLR

__all__ = ["BuildContext", "Encoder", "Method", "MethodSpec", "MoCo", "SimCLR", "StepContext", "build_encoder",
           "build_method"]
