"""``trainer.compile``: ``torch.compile`` (TorchInductor) for the parts of a method that pay off.

What gets compiled is the method's choice (:meth:`synco.methods.base.Method.compile_parts`): the encoders
(backbone + head, one graph each), the loss modules, and SynCo's negatives path after the selection. The
random draws and the selection stay eager, so a compiled run draws the same negatives as an eager one.

Before compiling, a one-line smoke test compiles and runs a tiny function on the training device. If it
fails (no C++ compiler on a CPU machine, no Triton on a GPU one, an unsupported platform), training goes
on eager after one warning line naming the reason: a missing compiler costs speed, never a run.
"""

from __future__ import annotations

import logging
import warnings

import torch

from synco.methods.base import Method
from synco.models.compiled import quiet_compiler_notices

log = logging.getLogger(__name__)

def compiler_problem(device: torch.device | str = "cpu") -> str | None:
    """None if ``torch.compile`` compiles and runs a tiny function on ``device``, else the reason, one line."""
    quiet_compiler_notices()
    device = torch.device(device)
    try:
        probe = torch.compile(lambda x: torch.sin(x) * 2 + 1, dynamic=False)
        x = torch.arange(8.0, device=device)
        if not torch.allclose(probe(x), torch.sin(x) * 2 + 1):
            return "the compiled probe computed a wrong result"
    except Exception as err:  # noqa: BLE001 - whatever the toolchain raises, the answer is "eager"
        text = str(err).strip().splitlines()
        return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
    return None


def compile_for_training(method: Method, mode: str, device: torch.device | str) -> bool:
    """Compile ``method``'s hot parts in place; returns False (after one warning) when the compiler fails."""
    problem = compiler_problem(device)
    if problem is not None:
        warnings.warn(f"trainer.compile=true but torch.compile does not work here ({problem}); training eager",
                      RuntimeWarning, stacklevel=2)
        return False
    names = method.compile_parts(mode)
    log.info("torch.compile (mode=%s) for training: %s", mode, ", ".join(names) or "nothing")
    return True
