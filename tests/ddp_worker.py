"""Worker of test_distributed.py, started by torchrun: a few MoCo/SynCo steps on 2 gloo processes.

Writes the per-rank losses and the final weights, queue and pointer (rank 0) to ``sys.argv[1]``.
Shared with the test: ``build`` and ``batches`` define the model and the data both runs use.
"""

import sys

import torch
from torch import nn

from synco.losses import InfoNCE
from synco.memory import NegativeQueue
from synco.methods import Encoder, MoCo, StepContext
from synco.negatives import SyntheticNegatives

STEPS, GLOBAL_BATCH, WORLD = 3, 8, 2


def build() -> MoCo:
    """A batch-norm-free encoder, so that one process on the whole batch computes what two do on halves."""
    torch.manual_seed(0)
    encoder = Encoder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 24), nn.ReLU()), nn.Linear(24, 8))
    negatives = SyntheticNegatives(
        num_hard=6, num_interpolate=2, num_extrapolate=2, num_mixup=2, num_noise=2, num_perturb=2,
        num_adversarial=2,
    )
    queue = NegativeQueue(32, 8, generator=torch.Generator().manual_seed(1))
    method = MoCo(encoder, queue, InfoNCE(0.2), momentum=0.9, negatives=negatives, mask_same_image=True,
                  shuffle_keys=True, warmup_epochs=1)
    return method.double()


def batches():
    """STEPS global batches of (view_q, view_k, index), identical in every process."""
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        views = torch.randn(2, GLOBAL_BATCH, 3, 4, 4, generator=g, dtype=torch.float64)
        index = torch.randint(0, 12, (GLOBAL_BATCH,), generator=g)  # repeats: same-image masking matters
        yield views[0], views[1], index


def optimizer_for(method: MoCo) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.trainable_parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)


def context_for(step: int, rank: int) -> StepContext:
    """Per-rank synthesis draws, one shared shuffle stream (rank 0's is broadcast); step 0 is warm-up."""
    if step == 0:
        context_for.generators = (torch.Generator().manual_seed(100 + rank), torch.Generator().manual_seed(7))
    synthesis, shuffle = context_for.generators
    return StepContext(epoch=step, generator=synthesis, shuffle_generator=shuffle)


if __name__ == "__main__":
    from two_processes import worker_main

    worker_main(sys.argv[1], build, optimizer_for, batches, context_for)
