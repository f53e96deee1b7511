"""SimSiam, Barlow Twins, VICReg and SwAV losses against float64 loops of their authors' code forms."""

import math

import pytest
import torch

from synco.functional import barlow_twins_loss, simsiam_loss, sinkhorn_knopp, swav_loss, vicreg_loss


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rows(t):
    return t.tolist()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def column_stats(z, unbiased):
    """Per-column mean and variance of a list of rows."""
    n, d = len(z), len(z[0])
    means = [sum(r[j] for r in z) / n for j in range(d)]
    var = [sum((r[j] - means[j]) ** 2 for r in z) / (n - 1 if unbiased else n) for j in range(d)]
    return means, var


# --- SimSiam ---------------------------------------------------------------------------------------------------

def test_simsiam_matches_the_loop():
    p1, p2, z1, z2 = (rows(randn(6, 5, seed=s)) for s in range(4))
    expected = -(sum(cosine(a, b) for a, b in zip(p1, z2)) / 6 + sum(cosine(a, b) for a, b in zip(p2, z1)) / 6) / 2
    got = simsiam_loss(*(torch.tensor(x, dtype=torch.float64) for x in (p1, p2, z1, z2)))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_simsiam_stops_the_gradient_into_the_projections_and_reaches_minus_one():
    p1, p2, z1, z2 = (randn(4, 3, seed=s).requires_grad_(True) for s in range(4))
    simsiam_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None and p1.grad.abs().sum() > 0
    z = randn(4, 3, seed=9)
    assert simsiam_loss(2 * z, 3 * z, z, z).item() == pytest.approx(-1.0, abs=1e-12)


# --- Barlow Twins ------------------------------------------------------------------------------------------------

def barlow_reference(z1, z2, lambd):
    n, d = len(z1), len(z1[0])

    def bn(z):
        means, var = column_stats(z, unbiased=False)
        return [[(r[j] - means[j]) / math.sqrt(var[j] + 1e-5) for j in range(d)] for r in z]

    a, b = bn(z1), bn(z2)
    c = [[sum(a[k][i] * b[k][j] for k in range(n)) / n for j in range(d)] for i in range(d)]
    return sum((1 - c[i][i]) ** 2 for i in range(d)) + lambd * sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)


@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_barlow_twins_matches_the_loop(lambd):
    z1, z2 = randn(7, 4, seed=1) * 3 + 1, randn(7, 4, seed=2)
    got = barlow_twins_loss(z1, z2, lambd)
    assert got.item() == pytest.approx(barlow_reference(rows(z1), rows(z2), lambd), rel=1e-10)


def test_barlow_twins_default_lambda_is_the_authors():
    z1, z2 = randn(5, 3, seed=3), randn(5, 3, seed=4)
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(barlow_reference(rows(z1), rows(z2), 0.0051), rel=1e-10)


def test_barlow_twins_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        barlow_twins_loss(randn(1, 3), randn(1, 3))


# --- VICReg ------------------------------------------------------------------------------------------------------

def vicreg_reference(z1, z2, sim, std, cov):
    n, d = len(z1), len(z1[0])
    repr_loss = sum((a - b) ** 2 for r1, r2 in zip(z1, z2) for a, b in zip(r1, r2)) / (n * d)
    std_loss, cov_loss = 0.0, 0.0
    for z in (z1, z2):
        means, var = column_stats(z, unbiased=True)
        std_loss += sum(max(0.0, 1 - math.sqrt(v + 1e-4)) for v in var) / d / 2
        x = [[r[j] - means[j] for j in range(d)] for r in z]
        c = [[sum(x[k][i] * x[k][j] for k in range(n)) / (n - 1) for j in range(d)] for i in range(d)]
        cov_loss += sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return sim * repr_loss + std * std_loss + cov * cov_loss


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_vicreg_matches_the_loop(coeffs):
    z1, z2 = randn(8, 5, seed=5) * 0.3, randn(8, 5, seed=6) * 2  # narrow columns make the hinge active
    got = vicreg_loss(z1, z2, *coeffs)
    assert got.item() == pytest.approx(vicreg_reference(rows(z1), rows(z2), *coeffs), rel=1e-10)


def test_vicreg_defaults_are_the_authors():
    z1, z2 = randn(6, 4, seed=7), randn(6, 4, seed=8)
    assert vicreg_loss(z1, z2).item() == pytest.approx(vicreg_reference(rows(z1), rows(z2), 25.0, 25.0, 1.0), rel=1e-10)


# --- SwAV --------------------------------------------------------------------------------------------------------

def sinkhorn_reference(scores, epsilon, iterations):
    """The authors' distributed_sinkhorn on one process, written out with lists."""
    b, p = len(scores), len(scores[0])
    q = [[math.exp(scores[i][k] / epsilon) for i in range(b)] for k in range(p)]  # (P, B)
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        q = [[v / sum(row) / p for v in row] for row in q]
        col = [sum(q[k][i] for k in range(p)) for i in range(b)]
        q = [[q[k][i] / col[i] / b for i in range(b)] for k in range(p)]
    return [[q[k][i] * b for k in range(p)] for i in range(b)]


def swav_reference(scores, crops_for_assign, temperature, epsilon, iterations, queue_scores=None):
    views, b = len(scores), len(scores[0])
    loss = 0.0
    for a, crop in enumerate(crops_for_assign):
        out = (queue_scores[a] if queue_scores is not None else []) + scores[crop]
        q = sinkhorn_reference(out, epsilon, iterations)[-b:]
        subloss = 0.0
        for v in range(views):
            if v == crop:
                continue
            total = 0.0
            for i in range(b):
                x = [s / temperature for s in scores[v][i]]
                m = max(x)
                log_z = m + math.log(sum(math.exp(t - m) for t in x))
                total += sum(q[i][k] * (x[k] - log_z) for k in range(len(x)))
            subloss -= total / b
        loss += subloss / (views - 1)
    return loss / len(crops_for_assign)


def unit_scores(*shape, seed=0):
    return torch.tanh(randn(*shape, seed=seed))  # cosines lie in [-1, 1]


@pytest.mark.parametrize("epsilon, iterations", [(0.05, 3), (0.5, 1), (0.1, 10)])
def test_sinkhorn_matches_the_loop_and_rows_sum_to_one(epsilon, iterations):
    scores = unit_scores(6, 4, seed=iterations)
    codes = sinkhorn_knopp(scores, epsilon, iterations)
    assert codes.shape == (6, 4)
    torch.testing.assert_close(codes, torch.tensor(sinkhorn_reference(rows(scores), epsilon, iterations),
                                                   dtype=torch.float64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_sinkhorn_equipartitions_with_many_iterations():
    codes = sinkhorn_knopp(unit_scores(12, 3, seed=4), epsilon=0.5, iterations=200)
    torch.testing.assert_close(codes.sum(dim=0), torch.full((3,), 4.0, dtype=torch.float64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("views, crops_for_assign", [(2, (0, 1)), (4, (0, 1)), (3, (0,))])
def test_swav_matches_the_loop(views, crops_for_assign):
    scores = unit_scores(views, 5, 4, seed=views)
    got = swav_loss(scores, crops_for_assign, temperature=0.1, epsilon=0.05, sinkhorn_iterations=3)
    expected = swav_reference([rows(s) for s in scores], crops_for_assign, 0.1, 0.05, 3)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_swav_with_queued_scores_matches_the_loop_and_differs_from_without():
    scores, queue = unit_scores(2, 4, 3, seed=11), unit_scores(2, 6, 3, seed=12)
    got = swav_loss(scores, (0, 1), 0.1, 0.05, 3, queue_scores=queue)
    expected = swav_reference([rows(s) for s in scores], (0, 1), 0.1, 0.05, 3, [rows(q) for q in queue])
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert got.item() != pytest.approx(swav_loss(scores, (0, 1)).item(), rel=1e-6)


def test_swav_codes_carry_no_gradient():
    scores = unit_scores(2, 4, 3, seed=13).requires_grad_(True)
    swav_loss(scores).backward()
    # d/ds of -sum q log softmax(s/t): (softmax(s/t) - q) / t per predicted crop, q treated as a constant
    codes = [sinkhorn_knopp(scores[c].detach()) for c in (0, 1)]
    for v, c in ((0, 1), (1, 0)):
        expected = (torch.softmax(scores[v].detach() / 0.1, dim=1) - codes[c]) / 0.1 / 4 / 2
        torch.testing.assert_close(scores.grad[v], expected, rtol=1e-10, atol=1e-12)


def test_swav_refuses_crops_it_does_not_have():
    with pytest.raises(ValueError, match="crops_for_assign"):
        swav_loss(unit_scores(2, 3, 4), crops_for_assign=(0, 2))
