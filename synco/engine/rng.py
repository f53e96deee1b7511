"""Random number state of a run: what a checkpoint stores so that ``--resume`` continues exactly.

Each rank draws its augmentations and synthetic negatives from its own generator (seeded by rank),
so the checkpoint keeps the states of all ranks; a run resumes with the same number of processes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from synco import distributed


class RunGenerators:
    """The generators of one process.

    Attributes:
        local: augmentation and synthesis draws, seeded ``seed + 2 + 1000 * rank``, on the device.
        shuffle: key-shuffle permutations (rank 0's are broadcast), seeded ``seed + 4``, on the device.
        data: epoch orders over the data set, seeded ``seed + 3``, the same on every rank (CPU).
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        rank = distributed.rank()
        self.local = torch.Generator(device=device).manual_seed(seed + 2 + 1000 * rank)
        self.shuffle = torch.Generator(device=device).manual_seed(seed + 4)
        self.data = torch.Generator().manual_seed(seed + 3)

    def state(self) -> dict:
        """States of every rank (collective: all ranks must call it)."""
        mine = {"torch": torch.get_rng_state(), "local": self.local.get_state()}
        if distributed.is_distributed():
            ranks: list = [None] * distributed.world_size()
            dist.all_gather_object(ranks, mine)
        else:
            ranks = [mine]
        return {"per_rank": ranks, "shuffle": self.shuffle.get_state(), "data": self.data.get_state()}

    def restore(self, state: dict) -> None:
        """Set this rank's generators from :meth:`state`'s output.

        Raises:
            ValueError: the checkpoint was written by a different number of processes.
        """
        ranks = state["per_rank"]
        if len(ranks) != distributed.world_size():
            raise ValueError(
                f"the checkpoint was written by {len(ranks)} process(es) and this run has "
                f"{distributed.world_size()}; resume with the same trainer.devices x trainer.num_nodes"
            )
        mine = ranks[distributed.rank()]
        torch.set_rng_state(mine["torch"])
        self.local.set_state(mine["local"])
        self.shuffle.set_state(state["shuffle"])
        self.data.set_state(state["data"])
