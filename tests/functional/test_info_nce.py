"""InfoNCE with queue and synthetic negatives against the explicit sums of Eq. 10-11."""

import math

import torch
from reference import info_nce_reference

from synco.functional import info_nce_logits, info_nce_loss
from synco.negatives import SyntheticNegatives


def test_matches_reference_with_synthetic_negatives(unit_rows):
    query, key, queue = unit_rows(5, 12, seed=1), unit_rows(5, 12, seed=2), unit_rows(30, 12, seed=3)
    gen = SyntheticNegatives(num_hard=8, num_interpolate=3, num_extrapolate=2, num_mixup=3, num_noise=2,
                             num_perturb=1, num_adversarial=1)
    sample = gen.sample(query, queue, generator=torch.Generator().manual_seed(0))
    synthetic = torch.einsum("bd,bsd->bs", query, sample.vectors)
    loss = info_nce_loss(query, key, query @ queue.T, synthetic, temperature=0.2)
    negatives = [list(queue) + list(sample.vectors[b]) for b in range(5)]
    assert math.isclose(loss.item(), info_nce_reference(query, key, negatives, 0.2), rel_tol=1e-12)


def test_matches_reference_without_synthetic_negatives(unit_rows):
    query, key, queue = unit_rows(4, 8, seed=4), unit_rows(4, 8, seed=5), unit_rows(16, 8, seed=6)
    loss = info_nce_loss(query, key, query @ queue.T, None, temperature=0.07)
    assert math.isclose(loss.item(), info_nce_reference(query, key, [list(queue)] * 4, 0.07), rel_tol=1e-12)


def test_identical_embeddings_give_log_one_plus_k():
    v = torch.nn.functional.normalize(torch.ones(3, 4, dtype=torch.float64), dim=1)
    queue = v[:1].expand(10, 4)
    loss = info_nce_loss(v, v, v @ queue.T, v @ queue[:2].T, temperature=0.5)
    assert math.isclose(loss.item(), math.log(1 + 10 + 2), rel_tol=1e-12)


def test_logits_layout_positive_first(unit_rows):
    query, key, queue = unit_rows(2, 4, seed=1), unit_rows(2, 4, seed=2), unit_rows(3, 4, seed=3)
    logits = info_nce_logits(query, key, query @ queue.T, torch.zeros(2, 5, dtype=torch.float64), temperature=0.5)
    assert logits.shape == (2, 1 + 3 + 5)
    torch.testing.assert_close(logits[:, 0], (query * key).sum(1) / 0.5)


def test_masked_entries_count_as_removed(unit_rows):
    query, key, queue = unit_rows(3, 8, seed=1), unit_rows(3, 8, seed=2), unit_rows(10, 8, seed=3)
    logits = (query @ queue.T).masked_fill(torch.eye(3, 10, dtype=torch.bool), torch.finfo(torch.float64).min)
    loss = info_nce_loss(query, key, logits, None, 0.2)
    negatives = [[queue[k] for k in range(10) if k != b] for b in range(3)]
    assert math.isclose(loss.item(), info_nce_reference(query, key, negatives, 0.2), rel_tol=1e-12)


def test_gradcheck_through_query(unit_rows):
    key, queue = unit_rows(3, 6, seed=2), unit_rows(12, 6, seed=3)
    fixed = unit_rows(3, 4, 6, seed=4)

    def f(q):
        return info_nce_loss(q, key, q @ queue.T, torch.einsum("bd,bsd->bs", q, fixed), 0.3)

    assert torch.autograd.gradcheck(f, (unit_rows(3, 6, seed=1).requires_grad_(True),))
