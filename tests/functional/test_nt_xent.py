"""NT-Xent (SimCLR) against a float64 loop written from its equation, and its per-process form."""

import math

import pytest
import torch
from reference import nt_xent_reference

from synco.functional import info_nce_loss, nt_xent_loss, nt_xent_loss_local
from synco.losses import NTXent


@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_matches_loop_reference(unit_rows, temperature):
    z1, z2 = unit_rows(6, 5, seed=1), unit_rows(6, 5, seed=2)
    expected = nt_xent_reference(z1, z2, temperature)
    assert math.isclose(nt_xent_loss(z1, z2, temperature).item(), expected, rel_tol=1e-12)
    assert math.isclose(NTXent(temperature)(z1, z2).item(), expected, rel_tol=1e-12)


def test_two_views_are_symmetric(unit_rows):
    z1, z2 = unit_rows(4, 3, seed=3), unit_rows(4, 3, seed=4)
    torch.testing.assert_close(nt_xent_loss(z1, z2), nt_xent_loss(z2, z1), rtol=1e-12, atol=0)


def test_per_process_losses_average_to_the_whole_batch_loss_and_gradient(unit_rows):
    """Two 'processes' of 3 rows each: the mean of their local losses, and its gradient, are the full batch's."""
    z1, z2 = unit_rows(6, 4, seed=5).requires_grad_(True), unit_rows(6, 4, seed=6).requires_grad_(True)
    full = nt_xent_loss(z1, z2, 0.3)
    (g1_full, g2_full) = torch.autograd.grad(full, (z1, z2))
    halves = [nt_xent_loss_local(z1[r * 3:(r + 1) * 3], z2[r * 3:(r + 1) * 3], z1, z2, r * 3, 0.3) for r in range(2)]
    mean = (halves[0] + halves[1]) / 2
    torch.testing.assert_close(mean, full, rtol=1e-12, atol=0)
    g1, g2 = torch.autograd.grad(mean, (z1, z2))
    torch.testing.assert_close(g1, g1_full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g2, g2_full, rtol=1e-10, atol=1e-12)


def test_identical_embeddings_give_log_of_2b_minus_1():
    """All 2B embeddings equal: every logit is 1 / t, so the loss is log(2B - 1)."""
    v = torch.nn.functional.normalize(torch.ones(5, 3, dtype=torch.float64), dim=1)
    assert math.isclose(nt_xent_loss(v, v, 0.2).item(), math.log(2 * 5 - 1), rel_tol=1e-12)


def test_one_image_equals_info_nce_with_the_other_anchors_as_queue(unit_rows):
    """For anchor z1[0]: positive z2[0], negatives every other embedding - InfoNCE with those as a queue."""
    z1, z2 = unit_rows(3, 4, seed=7), unit_rows(3, 4, seed=8)
    negatives = torch.cat([z1[1:], z2[1:]])  # (2B - 2, D)
    anchor_0 = info_nce_loss(z1[:1], z2[:1], z1[:1] @ negatives.T, None, 0.5)
    local = nt_xent_loss_local(z1[:1], z2[:1], z1, z2, 0, 0.5)  # anchors z1[0] and z2[0]
    anchor_0_view_2 = info_nce_loss(z2[:1], z1[:1], z2[:1] @ negatives.T, None, 0.5)
    torch.testing.assert_close(local, (anchor_0 + anchor_0_view_2) / 2, rtol=1e-12, atol=0)


def test_finite_and_float32_under_bf16_autocast(unit_rows):
    z1 = unit_rows(8, 16, seed=9).float().to(torch.bfloat16).requires_grad_(True)
    z2 = unit_rows(8, 16, seed=10).float().to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent_loss(z1, z2, 0.1)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z1.grad.float()).all()


def test_gradcheck(unit_rows):
    z1, z2 = unit_rows(3, 4, seed=11).requires_grad_(True), unit_rows(3, 4, seed=12).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.5), (z1, z2))
