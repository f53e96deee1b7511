"""Worker of test_simclr.py, started by torchrun: a few SimCLR steps on 2 gloo processes.

Writes the per-rank losses and the final weights (rank 0) to ``sys.argv[1]``. ``build`` and ``batches``
define the model and data that the single-process reference in the test uses too. With ``SYNCO_TEST_SYNTHESIS=1``
the method also builds synthetic negatives from each anchor's hardest in-batch negatives, drawn per rank.
"""

import os
import sys

import torch
from torch import nn

from synco.losses import NTXent
from synco.methods import Encoder, SimCLR, StepContext
from synco.negatives import SyntheticNegatives

STEPS, GLOBAL_BATCH, WORLD = 3, 8, 2


def synthesis() -> bool:
    return os.environ.get("SYNCO_TEST_SYNTHESIS") == "1"


def build() -> SimCLR:
    """A batch-norm-free encoder, so that one process on the whole batch computes what two do on halves."""
    torch.manual_seed(0)
    encoder = Encoder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 24), nn.ReLU()), nn.Linear(24, 8))
    negatives = SyntheticNegatives(num_hard=4, num_interpolate=2, num_extrapolate=2, num_mixup=2, num_noise=1,
                                   num_perturb=1, num_adversarial=1) if synthesis() else None
    return SimCLR(encoder, NTXent(0.5), negatives).double()


def context_for(step: int, rank: int) -> StepContext:
    """Per-rank synthesis draws (seeded 100 + rank), as the training loop's per-rank generators."""
    if step == 0:
        context_for.generator = torch.Generator().manual_seed(100 + rank)
    return StepContext(generator=context_for.generator)


def optimizer_for(method: SimCLR) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.trainable_parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)


def batches():
    """STEPS global batches of two views, identical in every process."""
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        views = torch.randn(2, GLOBAL_BATCH, 3, 4, 4, generator=g, dtype=torch.float64)
        yield views[0], views[1], torch.arange(GLOBAL_BATCH)


if __name__ == "__main__":
    from two_processes import worker_main

    worker_main(sys.argv[1], build, optimizer_for, batches, context_for)
