"""SyntheticNegatives against the float64 loop reference of every strategy (SynCo Eq. 4-9)."""

import pytest
import torch
from reference import hardest_rows, synthetic_reference

from synco.negatives import STRATEGIES, SyntheticNegatives, mochi, select_hardest

ALL_ZERO = dict(num_interpolate=0, num_extrapolate=0, num_mixup=0, num_noise=0, num_perturb=0, num_adversarial=0)
NAMES = ["num_interpolate", "num_extrapolate", "num_mixup", "num_noise", "num_perturb", "num_adversarial"]


def make(num_hard=8, counts=(3, 3, 3, 2, 2, 2), **kwargs):
    return SyntheticNegatives(num_hard=num_hard, **dict(zip(NAMES, counts)), **kwargs)


@pytest.mark.parametrize("strategy", range(6))
@pytest.mark.parametrize("extrapolation", ["paper", "reference"])
def test_each_strategy_alone_matches_loop_reference(unit_rows, strategy, extrapolation):
    query, queue = unit_rows(4, 16, seed=1), unit_rows(40, 16, seed=2)
    counts = [0] * 6
    counts[strategy] = 5
    gen = make(num_hard=10, counts=counts, sigma=0.05, delta=0.3, eta=0.05, extrapolation=extrapolation)
    s = gen.sample(query, queue, generator=torch.Generator().manual_seed(7))
    ref_v, ref_t, ref_i, ref_c = synthetic_reference(
        query, queue, counts, 10, torch.Generator().manual_seed(7), sigma=0.05, delta=0.3, eta=0.05,
        extrapolation=extrapolation,
    )
    torch.testing.assert_close(s.vectors, ref_v, rtol=1e-12, atol=1e-12)
    assert s.strategy.tolist() == ref_t
    assert torch.equal(s.index, ref_i)
    torch.testing.assert_close(s.coef, ref_c, rtol=1e-12, atol=1e-12)


def test_all_strategies_together_match_reference_and_layout(unit_rows):
    query, queue = unit_rows(3, 8, seed=3), unit_rows(30, 8, seed=4)
    counts = (4, 3, 5, 2, 1, 2)
    gen = make(num_hard=6, counts=counts)
    s = gen.sample(query, queue, generator=torch.Generator().manual_seed(0))
    ref_v, _, ref_i, _ = synthetic_reference(query, queue, counts, 6, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.vectors, ref_v, rtol=1e-12, atol=1e-12)
    assert s.vectors.shape == (3, sum(counts), 8)
    assert s.strategy.tolist() == [1] * 4 + [2] * 3 + [3] * 5 + [4] * 2 + [5] + [6] * 2
    assert torch.equal(s.index, ref_i)
    assert (s.index[:, s.strategy != 3, 1] == -1).all()
    assert (s.index[:, s.strategy == 3, 1] >= 0).all()


def test_paper_defaults():
    gen = SyntheticNegatives()
    assert gen.num_hard == 1024
    assert gen.counts == (256, 256, 256, 64, 64, 64)
    assert (gen.alpha_max, gen.beta_max, gen.sigma, gen.delta, gen.eta) == (0.5, 1.5, 0.01, 0.01, 0.01)
    assert gen.extrapolation == "paper"
    assert gen.num_synthetic == 960


def test_sources_are_among_the_hardest_and_coefficients_in_range(unit_rows):
    query, queue = unit_rows(5, 12, seed=5, dtype=torch.float32), unit_rows(64, 12, seed=6, dtype=torch.float32)
    gen = make(num_hard=7, counts=(20, 20, 20, 5, 5, 5))
    s = gen.sample(query, queue, generator=torch.Generator().manual_seed(1))
    hard = hardest_rows(query.double(), queue.double(), 7)
    for b in range(5):
        used = set(s.index[b, :, 0].tolist()) | set(s.index[b, s.strategy == 3, 1].tolist())
        assert used <= set(hard[b])
    alpha, beta, gamma = (s.coef[:, s.strategy == t] for t in (1, 2, 3))
    assert ((alpha > 0) & (alpha < 0.5)).all()
    assert ((beta > 1) & (beta < 1.5)).all()
    assert ((gamma > 0) & (gamma < 1)).all()
    assert (s.coef[:, s.strategy >= 4] == 0).all()


def test_select_hardest_is_sorted_top_n(unit_rows):
    query, queue = unit_rows(6, 10, seed=8), unit_rows(50, 10, seed=9)
    rows = select_hardest(query @ queue.T, 12)
    assert rows.tolist() == hardest_rows(query, queue, 12)


def test_unit_norm_and_detached(unit_rows):
    query = unit_rows(4, 16, seed=1, dtype=torch.float32).requires_grad_(True)
    queue = unit_rows(32, 16, seed=2, dtype=torch.float32).requires_grad_(True)
    s = make().sample(query, queue, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.vectors.norm(dim=-1), torch.ones(4, 15))
    assert not s.vectors.requires_grad


@pytest.mark.parametrize("logits_path", ["vectors", "dots"])
def test_logits_equal_einsum_of_sample_and_grad_only_into_query(unit_rows, logits_path):
    query = unit_rows(4, 16, seed=1).requires_grad_(True)
    queue = unit_rows(32, 16, seed=2).requires_grad_(True)
    gen = make(sigma=0.1, logits_path=logits_path)
    s = gen.sample(query, queue, generator=torch.Generator().manual_seed(3))
    logits = gen.logits(query, queue, generator=torch.Generator().manual_seed(3))
    exact = 0 if logits_path == "vectors" else 1e-14  # the dot-product path rounds differently
    torch.testing.assert_close(logits, torch.einsum("bd,bsd->bs", query, s.vectors), rtol=exact, atol=exact)
    logits.sum().backward()
    torch.testing.assert_close(query.grad, s.vectors.sum(dim=1))  # d(sum q.s)/dq with s fixed
    assert queue.grad is None


def test_logits_accept_precomputed_queue_logits(unit_rows):
    query, queue = unit_rows(4, 16, seed=1), unit_rows(32, 16, seed=2)
    gen = make()
    a = gen.logits(query, queue, generator=torch.Generator().manual_seed(3))
    b = gen.logits(query, queue, generator=torch.Generator().manual_seed(3), queue_logits=query @ queue.T)
    assert torch.equal(a, b)


def test_reproducible_under_fixed_generator_and_varies_otherwise(unit_rows):
    query, queue = unit_rows(4, 16, seed=1), unit_rows(32, 16, seed=2)
    gen = make()
    a = gen.sample(query, queue, generator=torch.Generator().manual_seed(11)).vectors
    b = gen.sample(query, queue, generator=torch.Generator().manual_seed(11)).vectors
    c = gen.sample(query, queue, generator=torch.Generator().manual_seed(12)).vectors
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_excluded_rows_are_never_sources(unit_rows):
    query, queue = unit_rows(3, 8, seed=1), unit_rows(20, 8, seed=2)
    exclude = torch.zeros(3, 20, dtype=torch.bool)
    hardest = (query @ queue.T).argmax(dim=1)
    exclude[torch.arange(3), hardest] = True  # the single hardest row of each query is "its own image"
    s = make(num_hard=4, counts=(10, 10, 10, 10, 10, 10)).sample(
        query, queue, generator=torch.Generator().manual_seed(0), exclude=exclude
    )
    for b in range(3):
        assert hardest[b].item() not in s.index[b].flatten().tolist()


def test_perturbed_and_adversarial_negatives_of_a_hand_made_case():
    """One queue row n = e3 and q = (0.6, -0.8, 0): Eq. 8 gives n + delta q, Eq. 9 n + eta sign(q) = n + eta (1, -1, 0),
    read from the generator's output, with delta != eta so that a swap shows."""
    query = torch.tensor([[0.6, -0.8, 0.0]], dtype=torch.float64)
    queue = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    s = make(num_hard=1, counts=(0, 0, 0, 0, 1, 1), delta=0.2, eta=0.05).sample(query, queue)
    perturbed = torch.tensor([0.12, -0.16, 1.0], dtype=torch.float64)
    adversarial = torch.tensor([0.05, -0.05, 1.0], dtype=torch.float64)
    torch.testing.assert_close(s.vectors[0, 0], perturbed / perturbed.norm(), rtol=0, atol=1e-15)
    torch.testing.assert_close(s.vectors[0, 1], adversarial / adversarial.norm(), rtol=0, atol=1e-15)
    logits = make(num_hard=1, counts=(0, 0, 0, 0, 1, 1), delta=0.2, eta=0.05).logits(query, queue)
    torch.testing.assert_close(logits[0], torch.stack([0.2 / perturbed.norm(), 0.07 / adversarial.norm()]),
                               rtol=0, atol=1e-15)


def test_all_counts_zero_gives_empty(unit_rows):
    query, queue = unit_rows(4, 16, seed=1), unit_rows(32, 16, seed=2)
    gen = SyntheticNegatives(num_hard=0, **ALL_ZERO)
    s = gen.sample(query, queue)
    assert s.vectors.shape == (4, 0, 16) and s.strategy.shape == (0,) and s.index.shape == (4, 0, 2)
    assert gen.logits(query, queue).shape == (4, 0)


@pytest.mark.parametrize("name", NAMES + ["num_hard"])
def test_negative_count_raises_naming_argument(name):
    with pytest.raises(ValueError, match=name):
        SyntheticNegatives(**{name: -1})


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha_max=0.0), "alpha_max"), (dict(alpha_max=1.5), "alpha_max"), (dict(beta_max=1.0), "beta_max"),
    (dict(sigma=-1.0), "sigma"), (dict(delta=-1.0), "delta"), (dict(eta=-1.0), "eta"),
    (dict(extrapolation="outward"), "extrapolation"), (dict(num_hard=0), "num_hard"),
    (dict(num_hard=2.5), "num_hard"),
])
def test_bad_arguments_raise_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SyntheticNegatives(**kwargs)


def test_num_hard_larger_than_queue_raises(unit_rows):
    with pytest.raises(ValueError, match="num_hard"):
        make(num_hard=100).sample(unit_rows(2, 8), unit_rows(50, 8))


def test_mismatched_shapes_raise(unit_rows):
    with pytest.raises(ValueError, match="query"):
        make().sample(unit_rows(2, 8), unit_rows(50, 9))


def test_mochi_mixes_are_synco_types_1_and_3(unit_rows):
    """MoCHI(N, s, s'): s neg-neg mixes = SynCo type 3; s' query-neg mixes (query weight < 0.5) = type 1."""
    query, queue = unit_rows(3, 8, seed=1), unit_rows(40, 8, seed=2)
    m = mochi(num_hard=16, num_mix=6, num_query_mix=4)
    synco = SyntheticNegatives(num_hard=16, num_interpolate=4, num_mixup=6, num_extrapolate=0, num_noise=0,
                               num_perturb=0, num_adversarial=0)
    a = m.sample(query, queue, generator=torch.Generator().manual_seed(5))
    b = synco.sample(query, queue, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.vectors, b.vectors) and torch.equal(a.index, b.index)
    assert a.strategy.tolist() == [1] * 4 + [3] * 6
    # MoCHI's query weight b ~ U(0, 0.5): over 3 x 200 draws both halves of (0, 0.5) are hit, nothing above.
    many = mochi(num_hard=16, num_mix=0, num_query_mix=200).sample(query, queue, generator=torch.Generator().manual_seed(6))
    assert many.coef.max() < 0.5 < 2 * many.coef.max() and many.coef.min() < 0.05


def test_strategy_names_in_order():
    assert STRATEGIES == ("interpolate", "extrapolate", "mixup", "noise", "perturb", "adversarial")
