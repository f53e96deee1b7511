"""Worker of test_two_view.py, started by torchrun: a few H-SCL steps on 2 gloo processes (labels gathered).

Writes the per-rank losses and the final weights (rank 0) to ``sys.argv[1]``; ``build`` and ``batches`` are
shared with the single-process reference of the test.
"""

import sys

import torch
from torch import nn

from synco.losses import HSCL
from synco.methods import Encoder, StepContext
from synco.methods.two_view import TwoViewContrastive

STEPS, GLOBAL_BATCH, WORLD = 3, 8, 2


def build() -> TwoViewContrastive:
    """A batch-norm-free encoder, so that one process on the whole batch computes what two do on halves."""
    torch.manual_seed(0)
    encoder = Encoder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 24), nn.ReLU()), nn.Linear(24, 8))
    return TwoViewContrastive(encoder, HSCL(0.5, beta=1.5), needs_labels=True).double()


def optimizer_for(method) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.trainable_parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)


def batches():
    """STEPS global batches of two views with labels, identical in every process; classes cross the ranks."""
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        views = torch.randn(2, GLOBAL_BATCH, 3, 4, 4, generator=g, dtype=torch.float64)
        yield views[0], views[1], torch.arange(GLOBAL_BATCH), torch.randint(3, (GLOBAL_BATCH,), generator=g)


if __name__ == "__main__":
    from two_processes import worker_main

    worker_main(sys.argv[1], build, optimizer_for, batches, lambda step, rank: StepContext())
