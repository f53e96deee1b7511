"""Worker of test_non_contrastive_methods.py, started by torchrun: a few steps of Barlow Twins, VICReg and SwAV on
2 gloo processes, each method in turn under one process group.

Writes, per method, the per-rank losses and rank 0's final state to ``sys.argv[1]``; ``BUILDERS``, ``context``
and ``batches`` are shared with the single-process reference of the test.
"""

import functools
import os
import sys

import torch
from torch import nn

from synco.functional import barlow_twins_loss, vicreg_loss
from synco.methods import Encoder, StepContext
from synco.methods.joint_embedding import JointEmbedding
from synco.methods.swav import SwAV

STEPS, GLOBAL_BATCH, WORLD = 4, 8, 2


def encoder(normalize: bool) -> Encoder:
    """Batch-norm-free, so that one process on the whole batch computes what two do on halves."""
    return Encoder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 24), nn.ReLU()), nn.Linear(24, 8), normalize)


def barlow_twins() -> JointEmbedding:
    torch.manual_seed(0)
    return JointEmbedding(encoder(False), functools.partial(barlow_twins_loss, lambd=0.05)).double()


def vicreg() -> JointEmbedding:
    torch.manual_seed(0)
    return JointEmbedding(encoder(False), vicreg_loss).double()


def swav() -> SwAV:
    """Prototypes frozen for the first step; a queue of one global batch, full (and used) from the third step."""
    torch.manual_seed(0)
    return SwAV(encoder(True), dim=8, num_prototypes=5, freeze_prototypes_steps=1, queue_size=GLOBAL_BATCH,
                queue_start_epoch=0).double()


BUILDERS = {"barlow_twins": barlow_twins, "vicreg": vicreg, "swav": swav}


def optimizer_for(method) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.trainable_parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def context(step: int) -> StepContext:
    return StepContext(epoch=0, progress=step / STEPS)


def batches():
    """STEPS global batches of two views, identical in every process."""
    g = torch.Generator().manual_seed(3)
    for _ in range(STEPS):
        views = torch.randn(2, GLOBAL_BATCH, 3, 4, 4, generator=g, dtype=torch.float64)
        yield views[0], views[1], torch.arange(GLOBAL_BATCH)


if __name__ == "__main__":
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import DDPStrategy

    from synco import distributed
    from synco.data.batch import Batch
    from synco.engine.step import train_step

    fabric = Fabric(accelerator="cpu", devices=WORLD, strategy=DDPStrategy(forward_sync_buffers=False))
    fabric.launch()
    rank, results = fabric.global_rank, {}
    for name, build in BUILDERS.items():
        method = build()
        model, optimizer = fabric.setup(method, optimizer_for(method))
        model.mark_forward_method("training_step")
        losses = []
        for step, (view_1, view_2, index) in enumerate(batches()):
            mine = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
            loss = train_step(fabric, model, method, optimizer, Batch(views=(view_1[mine], view_2[mine]),
                                                                       index=index[mine]), context(step))
            losses.append(distributed.all_gather_cat(loss.view(1)))
        results[name] = {"losses": torch.stack(losses), "state": method.state_dict()}
    if fabric.is_global_zero:
        torch.save(results, sys.argv[1])
    fabric.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # see two_processes.worker_main: the interpreter's teardown sometimes aborts after the work
