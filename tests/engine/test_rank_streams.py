"""Per-rank randomness in a real 2-process run: the ranks draw different augmentations and synthetic-negative
draws (their own local streams), reproducibly, each equal to one process seeded as that rank; the shuffle stream
is shared."""

import pytest
import rank_streams_worker as worker
import torch
from two_processes import run_worker

from synco.engine.rng import RunGenerators


@pytest.mark.slow
def test_two_ranks_draw_their_own_augmentations_and_negatives_reproducibly(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCO_TEST_CACHE", str(tmp_path / "cache"))
    first = run_worker(worker.__file__, tmp_path / "first.pt")
    again = run_worker(worker.__file__, tmp_path / "again.pt")
    zero, one = first
    assert torch.equal(zero["index"], one["index"])  # the same images on both ranks...
    assert not torch.equal(zero["views"], one["views"])  # ...augmented differently
    assert not torch.equal(zero["draws"], one["draws"])  # and different synthetic-negative draws
    assert torch.equal(zero["shuffle"], one["shuffle"])  # the shuffle stream is shared (rank 0's is broadcast)
    for a, b in zip(first, again):  # reproducible run to run
        for key in a:
            assert torch.equal(a[key], b[key]), key
    cfg = worker.config(str(tmp_path / "cache"))
    for rank, recorded in enumerate(first):  # each rank = one process whose stream is seeded as that rank's
        generators = RunGenerators(worker.SEED, torch.device("cpu"))
        generators.local.manual_seed(worker.SEED + 2 + 1000 * rank)
        alone = worker.first_batch_and_draws(cfg, generators, rank, worker.WORLD)
        assert torch.equal(alone["index"], recorded["index"]) and torch.equal(alone["draws"], recorded["draws"])
        # the same draws; the pixels up to float rounding (torchrun's processes may use another thread count)
        torch.testing.assert_close(alone["views"], recorded["views"], rtol=1e-5, atol=1e-5, msg=f"rank {rank}")
