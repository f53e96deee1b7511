"""schane_loss against the float64 loop of the reconstructed SCHaNe term, both weightings."""

import pytest
import torch
from reference import schane_reference

from synco.functional import schane_loss

LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 3, 2])


def rows(n=8, dim=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=g, dtype=dtype), dim=-1)


@pytest.mark.parametrize("weighting", ["anchor", "positive"])
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_matches_the_loop_reference(weighting, t):
    z = rows(seed=int(t * 10))
    loss = schane_loss(z, LABELS, temperature=t, weighting=weighting)
    assert loss.item() == pytest.approx(schane_reference(z, LABELS, t, weighting), rel=1e-10)


def test_the_two_weightings_differ_and_views_are_flattened():
    z = rows(seed=1)
    assert schane_loss(z, LABELS, weighting="anchor").item() != pytest.approx(
        schane_loss(z, LABELS, weighting="positive").item(), rel=1e-6)
    two_views = rows(n=8, seed=2).view(4, 2, 5)
    flat = torch.cat([two_views[:, 0], two_views[:, 1]])
    labels = torch.tensor([0, 1, 0, 2])
    assert schane_loss(two_views, labels).item() == pytest.approx(
        schane_reference(flat, torch.cat([labels, labels]), 0.1), rel=1e-10)


def test_anchors_without_positives_are_left_out_and_no_positive_gives_zero():
    z = rows(seed=3)
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])  # only anchors 0 and 1 have a positive
    assert schane_loss(z, labels).item() == pytest.approx(schane_reference(z, labels, 0.1), rel=1e-10)
    assert schane_loss(z, torch.arange(8)).item() == 0.0
    for weighting in ("anchor", "positive"):  # one class only: no negatives, no loss, finite gradients
        leaf = z.clone().requires_grad_(True)
        loss = schane_loss(leaf, torch.zeros(8, dtype=torch.long), weighting=weighting)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(leaf.grad).all()


def test_gradients_and_bfloat16():
    z = rows(n=6, dim=3, seed=4).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    for weighting in ("anchor", "positive"):
        assert torch.autograd.gradcheck(lambda x, w=weighting: schane_loss(x, labels, 0.5, w), (z,))
    low = rows(n=64, dim=16, seed=5, dtype=torch.float32).to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = schane_loss(low, torch.arange(64) % 5, temperature=0.05, weighting="positive")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(low.grad.float()).all()


@pytest.mark.parametrize("kwargs, match", [(dict(weighting="negative"), "weighting"), (dict(temperature=0.0), "temperature")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schane_loss(rows(), LABELS, **kwargs)
