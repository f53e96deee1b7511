"""H-SCL's four losses and Assumption 1, and SCHaNe's isotropy, against loops and hand-made cases."""

import math

import pytest
import torch

from synco.analysis.hard_negatives import SETTINGS, assumption_one, four_losses, isotropy, label_record
from synco.functional import hcl_loss, nt_xent_loss

LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1, 1])


def views(batch=9, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(2, batch, dim, generator=g, dtype=torch.float64), dim=-1)
    return z[0], z[1]


def loop_losses(z1, z2, labels, t=0.5):
    """The four losses from their definitions, one anchor at a time (positive: the other view)."""
    z, y = list(z1) + list(z2), [int(v) for v in labels] * 2
    n = len(z)
    out = {}

    def e(i, j):
        return math.exp(float(z[i] @ z[j]) / t)

    def mean_of(i, columns, kind=None, value=None):
        if not columns:
            return 0.0
        if kind == "beta":
            w = [e(i, j) ** value for j in columns]
            return sum(wj * e(i, j) for wj, j in zip(w, columns)) / sum(w)
        if kind == "tau":
            columns = [j for j in columns if e(i, j) >= value] or columns
        return sum(e(i, j) for j in columns) / len(columns)

    def total(select, kind=None, value=None):
        acc = 0.0
        for i in range(n):
            p = (i + n // 2) % n
            columns = [j for j in range(n) if j not in (i, p) and select(i, j)]
            acc += -math.log(e(i, p) / (e(i, p) + (n - 2) * mean_of(i, columns, kind, value)))
        return acc / n

    out["ucl"] = total(lambda i, j: True)
    out["scl"] = total(lambda i, j: y[i] != y[j])
    for name, (kind, value) in SETTINGS.items():
        out[f"hucl/{name}"] = total(lambda i, j: True, kind, value)
        out[f"hscl/{name}"] = total(lambda i, j: y[i] != y[j], kind, value)
    return out


def test_four_losses_match_the_loop_for_every_setting():
    z1, z2 = views(seed=1)
    got, expected = four_losses(z1, z2, LABELS), loop_losses(z1, z2, LABELS)
    assert got.keys() == expected.keys() and len(got) == 10
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-10), key


def test_ucl_is_nt_xent_and_h_ucl_beta_is_hcl_without_debiasing():
    z1, z2 = views(seed=2)
    got = four_losses(z1, z2, LABELS)
    assert got["ucl"] == pytest.approx(nt_xent_loss(z1, z2, 0.5).item(), rel=1e-12)
    assert got["hucl/beta_2"] == pytest.approx(hcl_loss(z1, z2, 0.5, 2.0, 0.0, clamp=False).item(), rel=1e-12)
    distinct = four_losses(z1, z2, torch.arange(9))
    assert distinct["scl"] == pytest.approx(distinct["ucl"], rel=1e-12)


def test_assumption_one_by_hand():
    """Images 0 and 1 share class 0; image 2 (class 1) lies at cosine 0 from image 0 and 0.8 from image 1;
    image 3 (class 2) is opposite image 0. Both views identical, t = 0.5, so g = 2 cos."""
    s = 0.6
    z1 = torch.tensor([[1.0, 0.0], [s, math.sqrt(1 - s * s)], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2])
    # Only images 0 and 1 (2 views each) have a same-class negative. beta = 1, tilted means of e^g:
    # image 0: same e^{1.2} = 3.32 against other (e^{2 x 0} e^0 + e^{2 x -2} e^{-2}) / (e^0 + e^{-2}) = 0.90: holds;
    # image 1: same e^{1.2} = 3.32 against other (e^{3.2} + e^{-2.4}) / (e^{1.6} + e^{-1.2}) = 4.69: fails.
    assert assumption_one(z1, z1.clone(), labels, ("beta", 1.0)) == (2, 4)
    # tau = e^{1.5} keeps g >= 1.5 (cosine >= 0.75): image 1's only hard negative is image 2, of another class,
    # and image 0 has none: nobody has both kinds.
    assert assumption_one(z1, z1.clone(), labels, ("tau", math.exp(1.5))) == (0, 0)
    # tau = e^{1.0} (cosine >= 0.5): image 0 keeps image 1 (same class) only; image 1 keeps image 0 and image 2:
    # same e^{1.2} < other e^{1.6}: counted, fails.
    assert assumption_one(z1, z1.clone(), labels, ("tau", math.exp(1.0))) == (0, 2)


def test_assumption_one_against_a_loop():
    z1, z2 = views(seed=3)
    z, y = list(z1) + list(z2), [int(v) for v in LABELS] * 2
    n = len(z)
    for kind, value in SETTINGS.values():
        hits = counted = 0
        for i in range(n):
            e = {j: math.exp(float(z[i] @ z[j]) / 0.5) for j in range(n) if j not in (i, (i + n // 2) % n)}
            if kind == "tau":
                e = {j: v for j, v in e.items() if v >= value}
                means = [[v for j, v in e.items() if (y[j] == y[i]) == same] for same in (True, False)]
                if not means[0] or not means[1]:
                    continue
                a, b = (sum(m) / len(m) for m in means)
            else:
                parts = [[(v ** value, v) for j, v in e.items() if (y[j] == y[i]) == same] for same in (True, False)]
                if not parts[0] or not parts[1]:
                    continue
                a, b = (sum(w * v for w, v in p) / sum(w for w, _ in p) for p in parts)
            counted += 1
            hits += a >= b
        assert assumption_one(z1, z2, LABELS, (kind, value)) == (hits, counted)


def test_isotropy_of_a_collapsed_set_and_against_its_sum():
    collapsed = torch.tensor([[3.0, 0.0, 0.0]]).repeat(5, 1)  # Z(e1) = 5 e, Z(c) = 5 for c orthogonal to e1
    assert isotropy(collapsed) == pytest.approx(1 / math.e, rel=1e-12)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64) + torch.tensor([2.0, 0, 0, 0], dtype=torch.float64)
    w = torch.nn.functional.normalize(x, dim=1)
    vectors = torch.linalg.eigh(w.T @ w).eigenvectors
    z = [sum(math.exp(float(w[i] @ vectors[:, c])) for i in range(30)) for c in range(4)]
    assert isotropy(x) == pytest.approx(min(z) / max(z), rel=1e-10)
    spread = torch.nn.functional.normalize(torch.randn(4000, 4, generator=g, dtype=torch.float64), dim=1)
    assert isotropy(spread) > 0.95 > isotropy(x)


def test_label_record_pools_batches():
    z1, z2 = views(batch=20, seed=5)
    labels = torch.arange(20) % 3
    record = label_record(z1, z2, labels, batch=10)
    first, second = four_losses(z1[:10], z2[:10], labels[:10]), four_losses(z1[10:], z2[10:], labels[10:])
    assert record["analysis/loss/scl"] == pytest.approx((first["scl"] + second["scl"]) / 2, rel=1e-12)
    hits = [assumption_one(a, b, y, SETTINGS["beta_1"]) for a, b, y in
            ((z1[:10], z2[:10], labels[:10]), (z1[10:], z2[10:], labels[10:]))]
    assert record["analysis/assumption1/beta_1"] == pytest.approx(sum(h for h, _ in hits) / sum(c for _, c in hits))
