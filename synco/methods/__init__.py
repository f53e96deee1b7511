"""Methods: compositions of encoders, memories, negatives and losses, behind one contract (base.py).

Building a method from a configuration (wrapped for continual learning when asked) is
:func:`synco.compose.build_method`.
"""

from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.moco import MoCo
from synco.methods.simclr import SimCLR

__all__ = ["BuildContext", "Encoder", "Method", "MethodSpec", "MoCo", "SimCLR", "StepContext", "build_encoder"]
