"""Methods: compositions of encoders, memories, negatives and losses, behind one contract (base.py), whose
steps return the typed records of outputs.py.

Building a method from a configuration (wrapped for continual learning when asked) is
:func:`synco.compose.build_method`.
"""

from synco.methods.base import BuildContext, Method, MethodSpec, StepContext
from synco.methods.encoder import Encoder, build_encoder
from synco.methods.moco import MoCo
from synco.methods.outputs import EmbeddingOutput, QueueOutput, StepOutput, SwavOutput
from synco.methods.simclr import SimCLR

__all__ = ["BuildContext", "EmbeddingOutput", "Encoder", "Method", "MethodSpec", "MoCo", "QueueOutput", "SimCLR",
           "StepContext", "StepOutput", "SwavOutput", "build_encoder"]
