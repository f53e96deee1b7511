"""select_hardest: the N largest logits per row, hardest first, on both the topk and threshold paths."""

import pytest
import torch
from reference import hardest_rows

from synco.negatives import mask_logits, select, select_hardest


def values(logits, rows):
    return torch.gather(logits, 1, rows)


@pytest.fixture(params=["threshold", "topk"])
def path(request, monkeypatch):
    """Run a test on both selection paths, whatever the queue-to-N ratio."""
    monkeypatch.setattr(select, "_MIN_QUEUE_PER_HARD", 1 if request.param == "threshold" else 10**9)
    return request.param


@pytest.mark.parametrize("num_hard", [1, 7, 64, 200])
def test_matches_the_loop_reference(unit_rows, num_hard, path):
    query, queue = unit_rows(5, 16, seed=1), unit_rows(4096, 16, seed=2)
    rows = select_hardest(query @ queue.T, num_hard)
    assert rows.tolist() == hardest_rows(query, queue, num_hard)


def test_float32_paper_ratio(unit_rows, path):
    logits = unit_rows(32, 64, seed=3, dtype=torch.float32) @ unit_rows(65536, 64, seed=4, dtype=torch.float32).T
    rows = select_hardest(logits, 1024)
    expected = torch.topk(logits, 1024, dim=1, sorted=True).values
    assert torch.equal(values(logits, rows), expected)
    assert all(len(set(r)) == 1024 for r in rows.tolist())  # no row twice, no padding (-1)
    assert rows.min() >= 0


def test_rows_with_too_few_unmasked_candidates_fall_back_exactly(unit_rows, path):
    query, queue = unit_rows(4, 8, seed=5), unit_rows(2048, 8, seed=6)
    exclude = torch.zeros(4, 2048, dtype=torch.bool)
    exclude[0, 40:] = True  # row 0 keeps only 40 rows: fewer than N = 64, masked rows must fill the rest
    exclude[1, ::2] = True
    logits = mask_logits(query @ queue.T, exclude)
    rows = select_hardest(logits, 64)
    assert torch.equal(values(logits, rows), torch.topk(logits, 64, dim=1).values)
    assert set(rows[0, :40].tolist()) == set(range(40))  # the unmasked ones come first
    assert not exclude[1].gather(0, rows[1]).any()


def test_ties_select_the_right_values(unit_rows, path):
    base = unit_rows(64, 8, seed=7)
    queue = base.repeat(40, 1)  # 2560 rows, each value 40 times
    query = unit_rows(3, 8, seed=8)
    logits = query @ queue.T
    rows = select_hardest(logits, 100)
    assert torch.equal(values(logits, rows), torch.topk(logits, 100, dim=1).values)
    assert all(len(set(r)) == 100 for r in rows.tolist())


def test_threshold_path_is_the_default_at_the_papers_ratio():
    assert select._MIN_QUEUE_PER_HARD <= 65536 // 1024


@pytest.mark.parametrize("extra", [15, 16, 17, 464, 465])
def test_candidate_counts_at_the_fallback_boundaries(extra):
    """K = 64 N exactly (the smallest queue that takes the threshold path, unpatched), N = 64: stride 2 and
    the threshold is the 48th largest even-position logit. Each row has those 48 evens on top plus ``extra``
    odd positions above the threshold: 48 + 16 = N candidates is the last count kept, N - 1 falls back to
    topk; 48 + 464 = 8 N the widest candidate matrix kept, 8 N + 1 falls back too."""
    num_hard, size = 64, 64 * 64
    g = torch.Generator().manual_seed(extra)
    logits = torch.rand(3, size, generator=g, dtype=torch.float64)  # all below 1
    for b in range(3):
        evens = torch.randperm(size // 2, generator=g)[:48] * 2
        odds = torch.randperm(size // 2, generator=g)[:extra] * 2 + 1
        logits[b, evens] = 2 + torch.rand(48, generator=g, dtype=torch.float64)  # threshold: their minimum >= 2
        # above it, growing with the column: the last candidates of a row are its hardest, so a candidate
        # lost to the overflow slot (the last ones pile up there) would be missed
        logits[b, odds] = 3 + odds.double() / size
    rows = select_hardest(logits, num_hard)
    expected = [sorted(range(size), key=lambda k, b=b: -float(logits[b, k]))[:num_hard] for b in range(3)]
    assert rows.tolist() == expected
