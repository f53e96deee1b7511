"""Continual-SSL losses (MoCo-v2+, PNR, CaSSLe's distillers) against float64 loops of their code forms."""

import math

import pytest
import torch

from synco.functional import (
    contrastive_distill_loss,
    info_nce_loss,
    mocov2plus_loss,
    pnr_byol_regularizer,
    pnr_moco_loss,
    pnr_simclr_loss,
    predictive_distill_loss,
)

B, D, K = 5, 4, 7


def unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def dot(a, b):
    return float((a * b).sum())


def ce_loop(anchors, positives, negatives, t):
    """mean_i -log e^{a.b/t} / (e^{a.b/t} + sum_n e^{a.n/t}), one anchor at a time."""
    total = 0.0
    for a, b in zip(anchors, positives):
        pos = math.exp(dot(a, b) / t)
        total += -math.log(pos / (pos + sum(math.exp(dot(a, n) / t) for n in negatives)))
    return total / len(anchors)


def cos_d(a, b):
    """2 - 2 cos, mean over rows."""
    return sum(2 - 2 * dot(x, y) / math.sqrt(dot(x, x) * dot(y, y)) for x, y in zip(a, b)) / len(a)


def test_mocov2plus_is_the_symmetric_loss_with_one_queue_per_view():
    q1, q2, k1, k2 = (unit(B, D, seed=s) for s in range(4))
    queues = unit(2, K, D, seed=4)
    expected = (ce_loop(q1, k2, queues[1], 0.2) + ce_loop(q2, k1, queues[0], 0.2)) / 2
    assert mocov2plus_loss(q1, q2, k1, k2, queues, 0.2).item() == pytest.approx(expected, rel=1e-10)


def test_pnr_moco_against_the_loop_and_with_empty_old_queues_its_plasticity_is_moco():
    z1, z2, k1, k2, p1, p2, zb1, zb2 = (unit(B, D, seed=s) for s in range(8))
    cur, old = unit(2, K, D, seed=8), unit(2, K, D, seed=9)
    expected = 0.0
    for z, k, p, zb, v in ((z1, k2, p1, zb1, 1), (z2, k1, p2, zb2, 0)):
        negatives = list(cur[v]) + list(old[v])
        expected += ce_loop(z, k, negatives, 0.2) + ce_loop(p, zb, negatives, 0.3)
    got = pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, old, temperature=0.2, distill_temperature=0.3)
    assert got.item() == pytest.approx(expected / 2, rel=1e-10)
    empty = torch.zeros(2, 0, D, dtype=torch.float64)
    plasticity_only = pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, empty) - (
        info_nce_loss(p1, zb1, p1 @ cur[1].T, None, 0.2) + info_nce_loss(p2, zb2, p2 @ cur[0].T, None, 0.2)) / 2
    assert plasticity_only.item() == pytest.approx(mocov2plus_loss(z1, z2, k1, k2, cur, 0.2).item(), rel=1e-10)


@pytest.mark.parametrize("decoupled", [True, False])
def test_pnr_simclr_masks_column_i_in_both_blocks(decoupled):
    p1, p2, z1, z2, zb1, zb2 = (unit(B, D, seed=10 + s) for s in range(6))
    z, zb, p = list(z1) + list(z2), list(zb1) + list(zb2), list(p1) + list(p2)
    n, t = 2 * B, 0.2
    plasticity = stability = 0.0
    for i in range(n):
        other = (i + B) % n
        den = sum(math.exp(dot(z[i], z[j]) / t) + math.exp(dot(z[i], zb[j]) / t) for j in range(n) if j != i)
        plasticity += -(dot(z[i], z[other]) / t - math.log(den))
        pos = math.exp(dot(p[i], zb[i]) / t)
        den = sum(math.exp(dot(p[i], zb[j]) / t) + math.exp(dot(p[i], z[j]) / t) for j in range(n) if j != i)
        stability += -math.log(pos / (den if decoupled else den + pos))
    got = pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, t, decoupled_stability=decoupled)
    assert got.item() == pytest.approx((plasticity + stability) / n, rel=1e-10)


def test_pnr_byol_pulls_the_same_view_and_pushes_the_other():
    p1, p2, zb1, zb2 = (unit(B, D, seed=20 + s) * 3 for s in range(4))  # not unit: cosines normalise
    expected = 1.0 * (cos_d(p1, zb1) + cos_d(p2, zb2)) / 2 - 0.5 * (cos_d(p1, zb2) + cos_d(p2, zb1)) / 2
    assert pnr_byol_regularizer(p1, p2, zb1, zb2).item() == pytest.approx(expected, rel=1e-10)
    assert predictive_distill_loss(p1, p2, zb1, zb2).item() == pytest.approx(
        (cos_d(p1, zb1) + cos_d(p2, zb2)) / 2, rel=1e-10)


def test_contrastive_distill_against_the_loop_and_its_maximum_positive():
    p1, p2, zb1, zb2 = (unit(B, D, seed=30 + s) * 2 for s in range(4))
    P = [v / math.sqrt(dot(v, v)) for v in list(p1) + list(p2)]
    Z = [v / math.sqrt(dot(v, v)) for v in list(zb1) + list(zb2)]
    n, t = 2 * B, 0.2

    def direction(a, b):
        return sum(-math.log(math.exp(dot(a[i], b[i]) / t) / sum(math.exp(dot(a[i], b[j]) / t) for j in range(n)))
                   for i in range(n)) / n

    expected = (direction(P, Z) + direction(Z, P)) / 2
    assert contrastive_distill_loss(p1, p2, zb1, zb2, t).item() == pytest.approx(expected, rel=1e-10)
    # method-notes 9.7: identity predictor and frozen = current: every positive logit is 1/t, the largest
    # of its row, so the loss is the loop's value with P = Zb and below any mismatched pairing.
    same = contrastive_distill_loss(p1, p2, p1, p2, t).item()
    assert same == pytest.approx((direction(P, P) + direction(P, P)) / 2, rel=1e-10)
    assert same < contrastive_distill_loss(p1, p2, p2, p1, t).item()


def test_gradients_flow_to_the_current_model_only():
    z1, z2, k1, k2, p1, p2, zb1, zb2 = (unit(B, D, seed=40 + s).requires_grad_(True) for s in range(8))
    cur, old = unit(2, K, D, seed=48), unit(2, K, D, seed=49)
    pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, old).backward()
    assert z1.grad is not None and p1.grad is not None
    assert zb1.grad is None and k1.grad is None  # frozen outputs and momentum keys are constants
    with pytest.raises(ValueError, match="previous_queues must be"):
        pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, old[:1])


@pytest.mark.parametrize("where", ["plasticity", "stability"])
def test_pnr_moco_with_pseudo_negatives_in_one_term_only(where):
    z1, z2, k1, k2, p1, p2, zb1, zb2 = (unit(B, D, seed=60 + s) for s in range(8))
    cur, old = unit(2, K, D, seed=68), unit(2, K, D, seed=69)
    expected = 0.0
    for z, k, p, zb, v in ((z1, k2, p1, zb1, 1), (z2, k1, p2, zb2, 0)):
        both, current = list(cur[v]) + list(old[v]), list(cur[v])
        expected += ce_loop(z, k, both if where == "plasticity" else current, 0.2)
        expected += ce_loop(p, zb, both if where == "stability" else current, 0.2)
    got = pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, old, pseudo_negatives=where)
    assert got.item() == pytest.approx(expected / 2, rel=1e-10)


def test_pnr_moco_with_synthetic_negatives_in_the_plasticity_terms():
    z1, z2, k1, k2, p1, p2, zb1, zb2 = (unit(B, D, seed=70 + s) for s in range(8))
    cur, old = unit(2, K, D, seed=78), unit(2, K, D, seed=79)
    s1, s2 = unit(B, 3, D, seed=80), unit(B, 3, D, seed=81)  # 3 synthetic vectors per query
    logits = (torch.einsum("bd,bsd->bs", z1, s1), torch.einsum("bd,bsd->bs", z2, s2))
    expected = 0.0
    for z, k, p, zb, v, syn in ((z1, k2, p1, zb1, 1, s1), (z2, k1, p2, zb2, 0, s2)):
        both = list(cur[v]) + list(old[v])
        for i in range(B):  # plasticity: the queues and this query's own synthetic negatives
            expected += ce_loop(z[i:i + 1], k[i:i + 1], both + list(syn[i]), 0.2) / B
        expected += ce_loop(p, zb, both, 0.2)
    got = pnr_moco_loss(z1, z2, k1, k2, p1, p2, zb1, zb2, cur, old, synthetic_logits=logits)
    assert got.item() == pytest.approx(expected / 2, rel=1e-10)
