"""The dot-product path of SyntheticNegatives.logits against the vector path and the float64 reference.

The fast path must give the same negatives as ``sample`` for the same generator state (values and
gradients, gradient only into the query) for every strategy and combination, in float64, float32 and
bf16, including N = 1, zero counts, ties among logits, masks, and queues with non-unit rows.
"""

import pytest
import torch
from reference import synthetic_reference

from synco.negatives import SyntheticNegatives, select_hardest

NAMES = ["num_interpolate", "num_extrapolate", "num_mixup", "num_noise", "num_perturb", "num_adversarial"]
STEPS = dict(sigma=0.05, delta=0.2, eta=0.05)


def make(num_hard, counts, logits_path, **kwargs):
    return SyntheticNegatives(num_hard=num_hard, **dict(zip(NAMES, counts)), logits_path=logits_path, **kwargs)


def both_paths(query, queue, num_hard, counts, seed=0, exclude=None, **kwargs):
    """(logits, query.grad) of the vector path and of the dot path from the same generator state."""
    out = []
    for path in ("vectors", "dots"):
        q = query.detach().clone().requires_grad_(True)
        gen = make(num_hard, counts, path, **kwargs)
        logits = gen.logits(q, queue, generator=torch.Generator().manual_seed(seed), exclude=exclude)
        if logits.numel():
            weights = torch.linspace(-1, 1, logits.numel(), dtype=logits.dtype).view_as(logits)
            (logits * weights).sum().backward()  # distinct weights so every logit's gradient counts
        out.append((logits.detach(), q.grad))
    return out


def single(strategy, count=5):
    counts = [0] * 6
    counts[strategy] = count
    return counts


@pytest.mark.parametrize("strategy", range(6))
@pytest.mark.parametrize("extrapolation", ["paper", "reference"])
def test_each_strategy_matches_vector_path_and_reference_in_float64(unit_rows, strategy, extrapolation):
    query, queue = unit_rows(4, 16, seed=1), unit_rows(40, 16, seed=2)
    counts = single(strategy)
    (lv, gv), (ld, gd) = both_paths(query, queue, 10, counts, seed=7, extrapolation=extrapolation, **STEPS)
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)
    ref_v, *_ = synthetic_reference(query, queue, counts, 10, torch.Generator().manual_seed(7),
                                    extrapolation=extrapolation, **STEPS)
    torch.testing.assert_close(ld, torch.einsum("bd,bsd->bs", query, ref_v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("counts", [(4, 3, 5, 2, 1, 2), (0, 0, 7, 0, 0, 0), (1, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0)])
def test_combinations_float64(unit_rows, counts):
    query, queue = unit_rows(3, 8, seed=3), unit_rows(30, 8, seed=4)
    (lv, gv), (ld, gd) = both_paths(query, queue, 6, counts, seed=1, **STEPS)
    assert ld.shape == (3, sum(counts))
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    if sum(counts):
        torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)


def test_float32_paper_scale_shapes(unit_rows):
    query = unit_rows(16, 32, seed=5, dtype=torch.float32)
    queue = unit_rows(4096, 32, seed=6, dtype=torch.float32)  # K >= 64 N: the threshold selection path
    counts = (16, 16, 16, 4, 4, 4)
    (lv, gv), (ld, gd) = both_paths(query, queue, 64, counts, seed=2)
    torch.testing.assert_close(ld, lv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gd, gv, rtol=1e-5, atol=1e-5)


def test_num_hard_one_uses_the_hardest_row_only(unit_rows):
    query, queue = unit_rows(5, 8, seed=8), unit_rows(20, 8, seed=9)
    (lv, gv), (ld, gd) = both_paths(query, queue, 1, (2, 2, 2, 2, 2, 2), **STEPS)
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)


def test_ties_among_logits(unit_rows):
    """Duplicated queue rows give exactly equal logits; both paths still agree."""
    base = unit_rows(6, 8, seed=10)
    queue = torch.cat([base, base, base, unit_rows(6, 8, seed=11)])  # every row of base three times
    query = unit_rows(4, 8, seed=12)
    (lv, gv), (ld, gd) = both_paths(query, queue, 5, (3, 3, 3, 3, 3, 3), **STEPS)
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)


def test_exclusion_mask_and_non_unit_queue_rows(unit_rows):
    query = unit_rows(3, 8, seed=13)
    scale = torch.linspace(0.5, 2.0, 24, dtype=torch.float64).unsqueeze(1)
    queue = unit_rows(24, 8, seed=14) * scale  # rows of different norms: the Gram formulas must use them
    exclude = torch.zeros(3, 24, dtype=torch.bool)
    exclude[:, :4] = True
    (lv, gv), (ld, gd) = both_paths(query, queue, 6, (3, 3, 3, 3, 3, 3), exclude=exclude, **STEPS)
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)


def test_queue_gets_no_gradient_on_the_dot_path(unit_rows):
    query = unit_rows(3, 8, seed=15).requires_grad_(True)
    queue = unit_rows(24, 8, seed=16).requires_grad_(True)
    make(6, (2, 2, 2, 2, 2, 2), "dots").logits(query, queue, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert queue.grad is None
    assert query.grad is not None


def test_precomputed_queue_logits_give_the_same_result(unit_rows):
    query, queue = unit_rows(3, 8, seed=17), unit_rows(24, 8, seed=18)
    gen = make(6, (2, 2, 2, 2, 2, 2), "dots")
    a = gen.logits(query, queue, generator=torch.Generator().manual_seed(0))
    b = gen.logits(query, queue, generator=torch.Generator().manual_seed(0), queue_logits=query @ queue.T)
    torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)


def test_bfloat16_against_the_float64_reference_of_the_same_draws(unit_rows):
    """Steps (0.3) far above bf16's rounding (about 4e-3 on a logit of size 1), so a wrong sign, a swapped
    step or a missing term fails the tolerance; the draws are made in bf16 and replayed by the reference."""
    query = unit_rows(8, 32, seed=19, dtype=torch.float32).to(torch.bfloat16).requires_grad_(True)
    queue = unit_rows(256, 32, seed=20, dtype=torch.float32).to(torch.bfloat16)
    counts, steps = (4, 4, 4, 4, 4, 4), dict(sigma=0.3, delta=0.3, eta=0.2)
    # bf16 logits tie often, and ties may select differently: both sides get the same hardest rows.
    hard = select_hardest(query.detach().double() @ queue.double().T, 16)
    fast = make(16, counts, "dots", **steps).logits(query, queue, generator=torch.Generator().manual_seed(0), hardest=hard)
    assert fast.dtype == torch.bfloat16
    fast.float().sum().backward()
    assert query.grad.dtype == torch.bfloat16 and torch.isfinite(query.grad.float()).all()
    ref_v, *_ = synthetic_reference(query.detach(), queue, counts, 16, torch.Generator().manual_seed(0), **steps,
                                    hard=hard.tolist())
    expected = torch.einsum("bd,bsd->bs", query.detach().double(), ref_v)
    torch.testing.assert_close(fast.double(), expected, rtol=0, atol=8e-3)


@pytest.mark.parametrize("counts", [(0, 0, 9, 0, 0, 0), (0, 0, 0, 9, 0, 0), (0, 0, 0, 0, 0, 9)])
def test_row_dots_beyond_their_first_chunk(unit_rows, counts):
    """B = 64, 9 negatives, D = 512: 2^18 / (9 x 512) = 56 queries a chunk, so the gathered dot products
    (mixup's n_i.n_j, noise's n.e, the sign step's n.sign(q)) run in two chunks, the second one partial."""
    query, queue = unit_rows(64, 512, seed=23), unit_rows(96, 512, seed=24)
    steps = dict(sigma=0.3, delta=0.3, eta=0.2)
    (lv, gv), (ld, gd) = both_paths(query, queue, 12, counts, seed=2, **steps)
    torch.testing.assert_close(ld, lv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gd, gv, rtol=1e-12, atol=1e-12)
    ref_v, *_ = synthetic_reference(query, queue, counts, 12, torch.Generator().manual_seed(2), **steps)
    torch.testing.assert_close(ld, torch.einsum("bd,bsd->bs", query, ref_v), rtol=1e-12, atol=1e-12)


def test_precomputed_hardest_rows_skip_selection(unit_rows):
    from synco.negatives import select_hardest

    query, queue = unit_rows(3, 8, seed=21), unit_rows(24, 8, seed=22)
    for path in ("vectors", "dots"):
        gen = make(6, (2, 2, 2, 2, 2, 2), path)
        hard = select_hardest(query @ queue.T, 6)
        a = gen.logits(query, queue, generator=torch.Generator().manual_seed(0))
        b = gen.logits(query, queue, generator=torch.Generator().manual_seed(0), hardest=hard)
        assert torch.equal(a, b)
        with pytest.raises(ValueError, match="hardest must be"):
            gen.logits(query, queue, hardest=hard[:, :3])
