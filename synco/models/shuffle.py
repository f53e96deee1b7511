"""Key shuffling (MoCo's shuffle-BN): the momentum encoder sees its batch in a random order, so batch
statistics cannot tell which key belongs to which query.

One process: :func:`batch_shuffle` / :func:`batch_unshuffle` permute the local batch (with split batch
norm this stands in for several GPUs). Several processes: :func:`batch_shuffle_across_ranks` permutes
the global batch, as MoCo's ``_batch_shuffle_ddp``; every rank encodes the share the permutation gives
it. The permutation is drawn from a generator on rank 0 and broadcast.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from synco import distributed


@torch.no_grad()
def batch_shuffle(batch: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(``batch`` in a random order, the index that restores the original order).

    Args:
        batch: (B, ...).
        generator: source of the permutation.

    Returns:
        shuffled (B, ...) and inverse (B,) with ``shuffled[inverse] == batch``.
    """
    perm = torch.randperm(batch.shape[0], generator=generator, device=batch.device)  # (B,)
    return batch[perm], torch.argsort(perm)


def batch_unshuffle(batch: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``batch`` (B, ...) back in the order before :func:`batch_shuffle` (``inverse`` from it)."""
    return batch[inverse]


@torch.no_grad()
def batch_shuffle_across_ranks(
    images: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator | None = None
) -> torch.Tensor:
    """``encode`` this rank's images with the global batch shuffled over all ranks.

    Every rank gathers all images, encodes the share a global permutation (rank 0's, broadcast)
    gives it, and takes back the outputs of its own images.

    Args:
        images: (b, ...) this rank's images.
        encode: (b, ...) -> (b, D), e.g. the key encoder.
        generator: source of the permutation (only rank 0's draw is used).

    Returns:
        (b, D) the outputs for this rank's images, in their order.
    """
    local, world, rank = images.shape[0], distributed.world_size(), distributed.rank()
    everything = distributed.all_gather_cat(images)  # (W b, ...), rank-major
    perm = torch.randperm(world * local, generator=generator, device=images.device)  # (W b,)
    distributed.broadcast_(perm, src=0)  # every rank must use rank 0's permutation
    mine = perm.view(world, local)[rank]  # (b,) global positions this rank encodes
    outputs = distributed.all_gather_cat(encode(everything[mine]))  # (W b, D) in permuted order
    outputs = outputs[torch.argsort(perm)]  # (W b, D) in global batch order
    return outputs.view(world, local, -1)[rank]  # (b, D) the outputs of this rank's images
