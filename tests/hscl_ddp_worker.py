"""Worker of test_two_view.py, started by torchrun: a few H-SCL steps on 2 gloo processes (labels gathered).

Writes the per-rank losses and the final weights (rank 0) to ``sys.argv[1]``; ``build``, ``batches`` and
``context_for`` are shared with the single-process reference of the test. With ``synthesis`` as ``sys.argv[2]``
the method also synthesises negatives from the other-class views: every rank must draw them from the shared
shuffle stream (each rank's own generator is seeded differently here, so drawing from it would show).
"""

import sys

import torch
from torch import nn

from synco.losses import HSCL
from synco.methods import Encoder, StepContext
from synco.methods.two_view import TwoViewContrastive
from synco.negatives import SyntheticNegatives

STEPS, GLOBAL_BATCH, WORLD = 3, 8, 2


def build(synthesis: bool = False) -> TwoViewContrastive:
    """A batch-norm-free encoder, so that one process on the whole batch computes what two do on halves."""
    torch.manual_seed(0)
    encoder = Encoder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 24), nn.ReLU()), nn.Linear(24, 8))
    negatives = SyntheticNegatives(num_hard=4, num_interpolate=2, num_extrapolate=2, num_mixup=2, num_noise=1,
                                   num_perturb=1, num_adversarial=1) if synthesis else None
    return TwoViewContrastive(encoder, HSCL(0.5, beta=1.5), needs_labels=True, negatives=negatives).double()


def context_for(step: int, rank: int) -> StepContext:
    """Per-rank local generators, one shuffle stream shared by the ranks (as the run's RunGenerators give)."""
    return StepContext(epoch=1, generator=torch.Generator().manual_seed(100 + 10 * step + rank),
                       shuffle_generator=torch.Generator().manual_seed(7 + step))


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

    synthesis = sys.argv[2:] == ["synthesis"]
    worker_main(sys.argv[1], lambda: build(synthesis), optimizer_for, batches, context_for)
