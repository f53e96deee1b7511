"""Running a few training steps on two gloo processes (torchrun), for tests that compare them with one process.

A worker file defines ``build()``, ``optimizer_for(method)``, ``batches()`` (identical global batches in
every process) and calls :func:`worker_main`; the test calls :func:`run_worker` and compares the result
with its single-process reference.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

WORLD = 2


def run_worker(worker_file: str, out: Path, *args: str) -> dict:
    """Run ``worker_file`` on two processes (``args`` after the output path); its per-step losses of each rank and
    rank 0's final state."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         str(Path(worker_file)), str(out), *args],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, f"the workers failed:\n{done.stderr[-4000:]}"
    return torch.load(out, weights_only=True)


def worker_main(out_path: str, build, optimizer_for, batches, context_for) -> None:
    """Each rank trains on its slice of every global batch through the library's ``train_step``.

    Args:
        batches: iterable of global (view_1, view_2, index) or (view_1, view_2, index, labels) batches.
        context_for: ``context_for(step, rank) -> StepContext``.
    """
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import DDPStrategy

    from synco import distributed
    from synco.data.batch import Batch
    from synco.engine.step import train_step

    fabric = Fabric(accelerator="cpu", devices=WORLD, strategy=DDPStrategy(forward_sync_buffers=False))
    fabric.launch()
    method = build()
    model, optimizer = fabric.setup(method, optimizer_for(method))
    model.mark_forward_method("training_step")
    rank = fabric.global_rank
    losses = []
    for step, (view_1, view_2, index, *labels) in enumerate(batches()):
        local = view_1.shape[0] // WORLD
        mine = slice(rank * local, (rank + 1) * local)
        batch = Batch(views=(view_1[mine], view_2[mine]), index=index[mine], labels=labels[0][mine] if labels else None)
        loss = train_step(fabric, model, method, optimizer, batch, context_for(step, rank))
        losses.append(distributed.all_gather_cat(loss.view(1)))  # (W,) this step's loss of each rank
    if fabric.is_global_zero:
        torch.save({"losses": torch.stack(losses), "state": method.state_dict()}, out_path)
    fabric.barrier()
    torch.distributed.destroy_process_group()
    # Skip the interpreter's teardown: about one worker run in 20-40 aborted there ("terminate called without
    # an active exception") even after the process group was destroyed, after everything above was done and
    # written. The result is on disk; the exit code should say so.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
