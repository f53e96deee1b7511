"""One optimisation step of MoCo-v2 / MoCHI / SynCo, the same on one process and on many."""

from __future__ import annotations

import torch

from synco.distributed import all_gather_cat


def train_step(
    fabric,
    model,
    method,
    optimizer: torch.optim.Optimizer,
    view_q: torch.Tensor,
    view_k: torch.Tensor,
    index: torch.Tensor,
    synthesize: bool,
    generator: torch.Generator | None,
    shuffle_generator: torch.Generator | None,
    observe=None,
) -> torch.Tensor:
    """Forward, backward (gradients averaged over ranks by DDP), SGD step, momentum update, enqueue.

    Args:
        fabric: the Lightning Fabric that set up ``model`` and ``optimizer``.
        model: ``method`` as returned by ``fabric.setup`` (DDP-wrapped with several processes).
        method: the unwrapped :class:`~synco.methods.moco.MoCo`.
        view_q, view_k: (b, C, H, W) this rank's two views; b = global batch / world size.
        index: (b,) dataset indices of this rank's images.
        synthesize: False during SynCo's warm-up.
        generator: this rank's source of synthesis draws.
        shuffle_generator: source of the key-shuffle permutation (rank 0's is broadcast).
        observe: optional ``observe(out, index, queue_image_index)`` called after the update and before
            the enqueue (the analyses need the queue the logits were computed against).

    Returns:
        This rank's loss (detached scalar).
    """
    # Fabric applies its precision context to marked forward methods only through DDP's forward, so
    # it is entered here for the single-process case too (nesting it is harmless).
    with fabric.autocast():
        out = model.training_step(view_q, view_k, index, synthesize, generator, shuffle_generator,
                                  return_sources=observe is not None)
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(out["loss"])
    optimizer.step()
    method.momentum_update()
    if observe is not None:
        observe(out, index, method.queue.image_index)
    # Every rank enqueues the keys of the whole global batch, in rank order, so all queues stay equal.
    method.queue.enqueue(all_gather_cat(out["key"]), all_gather_cat(index))
    return out["loss"].detach()
