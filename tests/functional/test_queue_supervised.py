"""SupCon and H-SCL against a label-aware contrast set (batch keys + queue), against float64 loops."""

import math

import pytest
import torch

from synco.functional.queue_supervised import hscl_queue_loss, supcon_queue_loss


def case(seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=1)
    query, contrast = unit(5), unit(12)
    query_labels = torch.tensor([0, 1, 2, 0, 3])  # class 3 has no positive in the contrast set
    contrast_labels = torch.tensor([0, 1, 2, 0, 1, -1, 2, 0, -1, 1, 2, 0])  # -1: the queue's random start
    return query, contrast, query_labels, contrast_labels


def test_supcon_against_a_contrast_set_matches_the_loop():
    q, c, ql, cl = case()
    t, base = 0.2, 0.1
    total = 0.0
    for i in range(5):
        s = [float(q[i] @ c[a]) / t for a in range(12)]
        log_z = math.log(sum(math.exp(v) for v in s))
        positives = [a for a in range(12) if int(cl[a]) == int(ql[i])]
        if positives:
            total += -(t / base) * sum(s[a] - log_z for a in positives) / len(positives)
    assert supcon_queue_loss(q, c, ql, cl, t, base).item() == pytest.approx(total / 5, rel=1e-10)


@pytest.mark.parametrize("beta, tau", [(1.0, None), (0.0, None), (2.0, None), (1.0, math.exp(0.5))])
def test_hscl_against_a_contrast_set_matches_the_loop(beta, tau):
    q, c, ql, cl = case(1)
    t, m = 0.5, 12 - 1
    losses = []
    for i in range(5):
        e = [math.exp(float(q[i] @ c[a]) / t) for a in range(12)]
        negatives = [a for a in range(12) if int(cl[a]) != int(ql[i])]
        if tau is not None:
            hard = [a for a in negatives if e[a] >= tau] or negatives
            nbar = sum(e[a] for a in hard) / len(hard)
        else:
            w = [e[a] ** beta for a in negatives]
            nbar = sum(wa * e[a] for wa, a in zip(w, negatives)) / sum(w)
        for p in (a for a in range(12) if int(cl[a]) == int(ql[i])):
            losses.append(-math.log(e[p] / (e[p] + m * nbar)))
    got = hscl_queue_loss(q, c, ql, cl, t, beta, tau)
    assert got.item() == pytest.approx(sum(losses) / len(losses), rel=1e-10)


def test_shapes_are_checked():
    q, c, ql, cl = case()
    with pytest.raises(ValueError, match="share D"):
        supcon_queue_loss(q, c[:, :3], ql, cl)
    with pytest.raises(ValueError, match="contrast_labels"):
        hscl_queue_loss(q, c, ql, cl[:3])
