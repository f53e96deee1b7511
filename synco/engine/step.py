"""One optimisation step of any method, the same on one process and on many.

The after-step sequence (momentum updates, enqueues) is the method's :meth:`after_step`; this is the
only place that calls it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from synco.data.batch import Batch
from synco.methods.base import Method, StepContext
from synco.methods.outputs import StepOutput


def train_step(
    fabric,
    model,
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    context: StepContext,
    observe: Callable[[StepOutput, Batch], None] | None = None,
) -> torch.Tensor:
    """Forward, backward (gradients averaged over ranks by DDP), optimizer step, then ``method.after_step``.

    Args:
        fabric: the Lightning Fabric that set up ``model`` and ``optimizer``.
        model: ``method`` as returned by ``fabric.setup`` (DDP-wrapped with several processes).
        method: the unwrapped method.
        batch: this process's share of the batch.
        context: epoch and generators of this step; ``context.observe`` asks for the analyses' outputs.
        observe: optional ``observe(out, batch)`` called after the optimizer step and before
            ``after_step`` (the analyses need the queue the logits were computed against).

    Returns:
        This rank's loss (detached scalar).
    """
    # Fabric applies its precision context to marked forward methods only through DDP's forward, so
    # it is entered here for the single-process case too (nesting it is harmless).
    with fabric.autocast():
        out = model.training_step(batch, context)
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(out.loss)
    optimizer.step()
    if observe is not None:
        observe(out, batch)
    method.after_step(out, batch)
    return out.loss.detach()
