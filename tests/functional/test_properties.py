"""Properties of the pure maths over random shapes and settings (hypothesis): permutation invariance, the
reductions to known methods, finiteness at extreme temperatures. Examples are few and small (seconds)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from synco.functional import hcl_loss, hscl_loss, info_nce_loss, nt_xent_loss, schane_loss, supcon_loss
from synco.negatives import SyntheticNegatives

FEW = settings(max_examples=20, deadline=None)
shapes = st.tuples(st.integers(2, 9), st.integers(2, 12), st.integers(0, 2**31 - 1))  # (B, D, seed)


def unit(b, d, seed, dtype=torch.float64):
    return F.normalize(torch.randn(b, d, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=1)


def labels_of(b, seed, classes=3):
    return torch.randint(0, classes, (b,), generator=torch.Generator().manual_seed(seed + 1))


@FEW
@given(shapes, st.floats(0.05, 2.0))
def test_batch_losses_do_not_depend_on_the_order_of_the_images(shape, t):
    b, d, seed = shape
    z1, z2, y = unit(b, d, seed), unit(b, d, seed + 7), labels_of(b, seed)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed + 3))
    for loss in (lambda a, c, lab: nt_xent_loss(a, c, t),
                 lambda a, c, lab: hcl_loss(a, c, t, beta=0.7, tau_plus=0.05),
                 lambda a, c, lab: hscl_loss(a, c, lab, t, beta=0.7),
                 lambda a, c, lab: supcon_loss(torch.stack([a, c], dim=1), lab, temperature=t, base_temperature=t),
                 lambda a, c, lab: schane_loss(torch.cat([a, c]), torch.cat([lab, lab]), t)):
        assert loss(z1[perm], z2[perm], y[perm]).item() == pytest.approx(loss(z1, z2, y).item(), rel=1e-10, abs=1e-12)


@FEW
@given(shapes, st.integers(1, 20), st.floats(0.05, 2.0))
def test_info_nce_does_not_depend_on_the_order_of_the_queue(shape, k, t):
    b, d, seed = shape
    q, key, queue = unit(b, d, seed), unit(b, d, seed + 1), unit(k, d, seed + 2)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    a = info_nce_loss(q, key, q @ queue.T, None, t)
    assert info_nce_loss(q, key, q @ queue[perm].T, None, t).item() == pytest.approx(a.item(), rel=1e-12)


@FEW
@given(shapes, st.floats(0.05, 2.0))
def test_reductions_to_nt_xent(shape, t):
    """SupCon with distinct labels, HCL with beta = tau+ = 0 (no clamp), H-SCL with distinct labels and beta 0."""
    b, d, seed = shape
    z1, z2 = unit(b, d, seed), unit(b, d, seed + 7)
    expected = nt_xent_loss(z1, z2, t).item()
    distinct = torch.arange(b)
    assert supcon_loss(torch.stack([z1, z2], dim=1), distinct, temperature=t,
                       base_temperature=t).item() == pytest.approx(expected, rel=1e-10)
    assert hcl_loss(z1, z2, t, beta=0.0, tau_plus=0.0, clamp=False).item() == pytest.approx(expected, rel=1e-10)
    assert hscl_loss(z1, z2, distinct, t, beta=0.0).item() == pytest.approx(expected, rel=1e-10)


@FEW
@given(shapes, st.integers(4, 40), st.floats(0.05, 1.0))
def test_synthesis_with_every_count_at_zero_is_plain_info_nce(shape, k, t):
    b, d, seed = shape
    q, key, queue = unit(b, d, seed), unit(b, d, seed + 1), unit(k, d, seed + 2)
    none = SyntheticNegatives(num_hard=min(4, k), num_interpolate=0, num_extrapolate=0, num_mixup=0, num_noise=0,
                              num_perturb=0, num_adversarial=0)
    synthetic = none.logits(q, queue, generator=torch.Generator().manual_seed(seed))
    assert synthetic.shape == (b, 0)
    assert info_nce_loss(q, key, q @ queue.T, synthetic, t).item() == pytest.approx(
        info_nce_loss(q, key, q @ queue.T, None, t).item(), rel=1e-12)


@FEW
@given(shapes, st.sampled_from([1e-3, 1e-2, 10.0, 100.0]))
def test_losses_and_gradients_stay_finite_at_extreme_temperatures(shape, t):
    b, d, seed = shape
    z1 = unit(b, d, seed, torch.float32).requires_grad_(True)
    z2, y = unit(b, d, seed + 7, torch.float32), labels_of(b, seed)
    queue = unit(16, d, seed + 2, torch.float32)
    synthesis = SyntheticNegatives(num_hard=8, num_interpolate=3, num_extrapolate=3, num_mixup=3, num_noise=2,
                                   num_perturb=2, num_adversarial=2)
    values = [
        nt_xent_loss(z1, z2, t),
        hcl_loss(z1, z2, t),
        hscl_loss(z1, z2, y, t, beta=1.0),
        supcon_loss(torch.stack([z1, z2], dim=1), y, temperature=t, base_temperature=0.07),
        schane_loss(torch.cat([z1, z2]), torch.cat([y, y]), t),
        info_nce_loss(z1, z2, z1 @ queue.T, synthesis.logits(z1, queue, generator=torch.Generator().manual_seed(0)), t),
    ]
    for value in values:
        (grad,) = torch.autograd.grad(value, z1, retain_graph=True)
        assert math.isfinite(value.item()) and bool(torch.isfinite(grad).all()), value
