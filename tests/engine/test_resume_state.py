"""State that crosses a resume or a process boundary, against values computed independently of the code path."""

import json
import math

import torch
from tiny_runs import tiny

from synco.engine.checkpoint import load_checkpoint
from synco.pipelines.pretrain import checkpoint_path, pretrain


def epoch_records(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["step"], r["train/lr"], r["train/loss"]) for r in records if "train/loss" in r]


def test_stop_after_counts_from_the_resume_point_and_the_lr_schedule_continues(tmp_path):
    """3 epochs straight against three invocations of one epoch each (train.stop_after=1, --resume): every
    invocation adds exactly one epoch, the learning rate of every epoch is the cosine schedule's (not restarted),
    and the weights are identical."""
    settings = ("train.epochs=3", "train.schedule=cosine", "eval.baselines=false")
    straight = tmp_path / "straight"
    pretrain(tiny(straight, *settings))
    sliced = tmp_path / "sliced"
    for invocation in range(3):
        record = pretrain(tiny(sliced, *settings, "train.stop_after=1"), resume=invocation > 0)
        assert record["epoch"] == invocation + 1 and load_checkpoint(checkpoint_path(sliced))["epoch"] == invocation + 1
    lrs = [lr for _, _, lr, _ in epoch_records(straight)]
    base = 0.05  # TINY's train.lr
    expected = [base * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    assert all(abs(a - b) < 1e-9 for a, b in zip(lrs, expected)), (lrs, expected)
    assert epoch_records(sliced) == epoch_records(straight)
    a, b = load_checkpoint(checkpoint_path(straight)), load_checkpoint(checkpoint_path(sliced))
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_each_rank_draws_its_own_reproducible_streams(monkeypatch):
    """Rank r's augmentation/synthesis stream is seeded seed + 2 + 1000 r: two ranks differ, the same rank repeats;
    the shuffle and data-order streams are shared by all ranks."""
    from synco.engine import rng

    def generators(rank):
        monkeypatch.setattr(rng.distributed, "rank", lambda: rank)
        return rng.RunGenerators(7, torch.device("cpu"))

    zero, one, zero_again = generators(0), generators(1), generators(0)
    draw = lambda g: torch.rand(5, generator=g.local)  # noqa: E731
    a, b, c = draw(zero), draw(one), draw(zero_again)
    assert not torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(a, torch.rand(5, generator=torch.Generator().manual_seed(7 + 2)))
    assert torch.equal(b, torch.rand(5, generator=torch.Generator().manual_seed(7 + 2 + 1000)))
    assert torch.equal(torch.randperm(9, generator=zero.data), torch.randperm(9, generator=one.data))
    assert torch.equal(torch.rand(3, generator=zero.shuffle), torch.rand(3, generator=one.shuffle))
