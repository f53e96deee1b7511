"""Worker of test_distributed.py, started by torchrun: a few MoCo/SynCo steps on 2 gloo processes.

Writes the per-rank losses and the final weights, queue and pointer (rank 0) to ``sys.argv[1]``.
Shared with the test: ``build`` and ``batches`` define the model and the data both runs use.
"""

import sys

import torch
from lightning.fabric import Fabric
from lightning.fabric.strategies import DDPStrategy
from torch import nn

from synco import distributed
from synco.engine.step import train_step
from synco.methods.moco import Encoder, MoCo
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
    method = MoCo(encoder, 8, queue_size=32, momentum=0.9, temperature=0.2, negatives=negatives,
                  mask_same_image=True, shuffle_keys=True, queue_generator=torch.Generator().manual_seed(1))
    return method.double()


def batches():
    """STEPS global batches of (view_q, view_k, index), identical in every process."""
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        views = torch.randn(2, GLOBAL_BATCH, 3, 4, 4, generator=g, dtype=torch.float64)
        index = torch.randint(0, 12, (GLOBAL_BATCH,), generator=g)  # repeats: same-image masking matters
        yield views[0], views[1], index


def optimizer_for(method: MoCo) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.encoder_q.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)


def main(out_path: str) -> None:
    fabric = Fabric(accelerator="cpu", devices=WORLD, strategy=DDPStrategy(forward_sync_buffers=False))
    fabric.launch()
    method = build()
    model, optimizer = fabric.setup(method, optimizer_for(method))
    model.mark_forward_method("training_step")
    rank, local = fabric.global_rank, GLOBAL_BATCH // WORLD
    synthesis = torch.Generator().manual_seed(100 + rank)
    shuffle = torch.Generator().manual_seed(7)
    losses = []
    for step, (view_q, view_k, index) in enumerate(batches()):
        mine = slice(rank * local, (rank + 1) * local)
        loss = train_step(fabric, model, method, optimizer, view_q[mine], view_k[mine], index[mine],
                          step >= 1, synthesis, shuffle)  # step 0 is warm-up: no synthesis
        losses.append(distributed.all_gather_cat(loss.view(1)))  # (W,) this step's loss of each rank
    if fabric.is_global_zero:
        torch.save({"losses": torch.stack(losses), "state": method.state_dict()}, out_path)
    fabric.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
