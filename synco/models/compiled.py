"""Modules whose training forward can be compiled with ``torch.compile`` (``trainer.compile``).

A module with :class:`CompilableForward` keeps its maths in ``eager_forward``. After
``compile_forward()`` its ``forward`` runs a compiled copy of ``eager_forward`` in training mode and the
eager code otherwise, so evaluation (eval mode, other batch sizes) never triggers a recompilation and
inference stays exactly the eager computation. The compiled function is the class's, called with the
module as first argument: a deep copy of a compiled module (a momentum encoder, a frozen continual
teacher) runs *its own* weights, never the original's.
"""

from __future__ import annotations

import logging

import torch

#: Inductor on a CPU-only machine logs a CUDA_HOME notice on its first compilation; it is noise here.
_QUIET_LOGGERS = ("torch.utils.cpp_extension",)


def quiet_compiler_notices() -> None:
    """Silence the compiler's notices that say nothing to a user (see ``_QUIET_LOGGERS``)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class CompilableForward:
    """Mixin for ``nn.Module``s: ``forward`` = ``eager_forward``, compiled in training mode once asked to."""

    _compiled_forward = None

    def compile_forward(self, mode: str = "default") -> None:
        """Compile ``eager_forward`` for training-mode calls (shapes specialised: ``dynamic=False``)."""
        quiet_compiler_notices()
        self._compiled_forward = torch.compile(type(self).eager_forward, mode=mode, dynamic=False)

    @property
    def is_compiled(self) -> bool:
        return self._compiled_forward is not None

    def forward(self, *args, **kwargs):
        if self._compiled_forward is not None and self.training:
            return self._compiled_forward(self, *args, **kwargs)
        return self.eager_forward(*args, **kwargs)

    def eager_forward(self, *args, **kwargs):  # pragma: no cover - every user defines it
        raise NotImplementedError
