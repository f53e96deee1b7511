"""Worker of test_rank_streams.py, started by torchrun on 2 gloo processes: each rank builds the run's generators
and the library's data path exactly as pretraining does, over an order in which both ranks' slices hold the same
images, and records its first batch's views and the next draws of its local stream (the synthetic negatives'
source, ``StepContext.generator``). Rank 0 writes every rank's records to ``sys.argv[1]``."""

import os
import sys

import torch
from tiny_runs import TINY

from synco import distributed
from synco.config import load_config
from synco.data.loaders import normalisation
from synco.engine.inputs import augmentation, load_splits, views_iterator
from synco.engine.rng import RunGenerators

GLOBAL_BATCH, WORLD, SEED = 16, 2, 0


def config(cache: str):
    return load_config(None, TINY + [f"train.batch_size={GLOBAL_BATCH}", f"data.cache_dir={cache}",
                                     f"train.seed={SEED}"])


def first_batch_and_draws(cfg, generators: RunGenerators, rank: int, world: int):
    """This rank's first batch (views) and 8 further draws of its local stream."""
    train, _, _ = load_splits(cfg)
    mean, std = normalisation(train)
    augment, loader = augmentation(cfg, train, mean, std, "cpu")
    order = torch.arange(GLOBAL_BATCH // world).repeat(world)  # every rank's slice: the same images 0..b-1
    batch = next(iter(views_iterator(cfg, train, order, GLOBAL_BATCH, augment, generators.local, "cpu", rank, world,
                                     sample_loader=loader, worker_seed=SEED)))
    return {"views": torch.stack(batch.views), "index": batch.index,
            "draws": torch.rand(8, generator=generators.local), "shuffle": torch.rand(4, generator=generators.shuffle)}


if __name__ == "__main__":
    torch.distributed.init_process_group("gloo")
    rank = distributed.rank()
    mine = first_batch_and_draws(config(os.environ["SYNCO_TEST_CACHE"]), RunGenerators(SEED, torch.device("cpu")),
                                 rank, WORLD)
    everyone = [None] * WORLD
    torch.distributed.all_gather_object(everyone, mine)
    if rank == 0:
        torch.save(everyone, sys.argv[1])
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # see two_processes.worker_main
