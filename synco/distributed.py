"""The few collective operations the methods need, on torch.distributed; identities in a single process.

The process group is created by whoever launched the processes (Lightning Fabric, torchrun, SLURM);
this module only uses it. Every function works unchanged without one, so the method code has a single
path for one CPU, one GPU and many.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def launched_as_rank_zero() -> bool:
    """Whether the launcher started this process as global rank 0, readable before any process group exists
    (torchrun: RANK; SLURM: SLURM_PROCID; Lightning's launcher: NODE_RANK and LOCAL_RANK); True alone."""
    import os

    for name in ("RANK", "SLURM_PROCID"):
        if name in os.environ:
            return os.environ[name] == "0"
    return os.environ.get("NODE_RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@torch.no_grad()
def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally shaped tensors of all ranks along dim 0, in rank order (no gradient).

    (b, ...) on each of W ranks -> (W b, ...) on every rank; the tensor itself with one process.
    """
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def all_gather_uneven(tensor: torch.Tensor) -> torch.Tensor:
    """Like :func:`all_gather_cat` for shards whose first dimensions differ by rank."""
    if not is_distributed():
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = all_gather_cat(size).tolist()
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = all_gather_cat(padded)  # (W * max, ...)
    return torch.cat([gathered[r * max(sizes): r * max(sizes) + n] for r, n in enumerate(sizes)])


@torch.no_grad()
def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values (in place); a no-op alone."""
    if is_distributed():
        dist.broadcast(tensor, src)
    return tensor


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered rows and returns this rank's.

    Written out rather than ``torch.distributed.nn.all_gather``: with gloo (the CPU backend) that
    function's backward, emulated with all_to_all, returned wrong gradients in torch 2.14 (measured:
    up to 0.43 off against one process; tests/test_simclr.py catches it).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)  # (W b, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # sum over ranks of d(loss_r)/d(gathered rows)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]  # (b, ...) the rows of this rank


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Like :func:`all_gather_cat`, but the gradient flows back to every rank's input.

    In the backward pass each rank receives the sum over ranks of the gradients with respect to its
    rows, which is what in-batch losses over the global batch (SimCLR's NT-Xent) need for W processes
    to compute what one process computes on the whole batch (with DDP averaging the ranks' gradients).
    Equal shapes on every rank are required.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)
