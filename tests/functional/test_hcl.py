"""hcl_loss against the float64 loop of HCL's hard estimator, and its reductions to DCL and NT-Xent."""

import math

import pytest
import torch
from reference import hcl_reference

from synco.functional import hcl_loss, nt_xent_loss


def views(batch=5, dim=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(2, batch, dim, generator=g, dtype=dtype), dim=-1)
    return z[0], z[1]


@pytest.mark.parametrize("t, beta, tau_plus, clamp", [(0.5, 1.0, 0.1, True), (0.2, 2.0, 0.05, True),
                                                      (0.5, 0.5, 0.0, False), (0.3, 0.0, 0.1, True)])
def test_matches_the_loop_reference(t, beta, tau_plus, clamp):
    z1, z2 = views(seed=int(beta * 10))
    loss = hcl_loss(z1, z2, temperature=t, beta=beta, tau_plus=tau_plus, clamp=clamp)
    assert loss.item() == pytest.approx(hcl_reference(z1, z2, t, beta, tau_plus, clamp), rel=1e-10)


def test_beta_0_and_tau_plus_0_without_clamp_is_nt_xent():
    z1, z2 = views(seed=1)
    loss = hcl_loss(z1, z2, temperature=0.5, beta=0.0, tau_plus=0.0, clamp=False)
    assert loss.item() == pytest.approx(nt_xent_loss(z1, z2, 0.5).item(), rel=1e-12)


def test_beta_0_is_dcl():
    """Debiased contrastive loss (Chuang et al. 2020): Ng = max((sum_j neg_j - tau+ N pos) / (1 - tau+), N e^{-1/t})."""
    z1, z2 = views(seed=2)
    z, t, tp = torch.cat([z1, z2]), 0.5, 0.1
    n = len(z) - 2
    total = 0.0
    for i in range(len(z)):
        j = (i + len(z1)) % len(z)
        pos = math.exp(float(z[i] @ z[j]) / t)
        neg = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(len(z)) if k not in (i, j))
        ng = max((neg - tp * n * pos) / (1 - tp), n * math.exp(-1 / t))
        total += -math.log(pos / (pos + ng))
    assert hcl_loss(z1, z2, t, beta=0.0, tau_plus=tp).item() == pytest.approx(total / len(z), rel=1e-12)


def test_clamp_lifts_negative_estimates_and_without_it_the_loss_is_nan_as_in_the_authors_code():
    z1, _ = views(seed=3)
    z2 = z1.clone()  # positives at similarity 1: tau+ N pos dominates, the debiased estimate goes negative
    assert math.isnan(hcl_reference(z1, z2, 0.5, 1.0, 0.5, clamp=False))
    assert torch.isnan(hcl_loss(z1, z2, 0.5, beta=1.0, tau_plus=0.5, clamp=False))
    clamped = hcl_loss(z1, z2, 0.5, beta=1.0, tau_plus=0.5, clamp=True)
    assert clamped.item() == pytest.approx(hcl_reference(z1, z2, 0.5, 1.0, 0.5, clamp=True), rel=1e-10)


def test_gradients_with_and_without_detached_weights():
    z1, z2 = views(batch=3, dim=3, seed=4)
    z1.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: hcl_loss(a, z2, 0.5, beta=1.5, tau_plus=0.1), (z1,))
    grads = []
    for detach in (False, True):
        z = z1.detach().clone().requires_grad_(True)
        hcl_loss(z, z2, 0.5, beta=1.5, tau_plus=0.1, detach_weights=detach).backward()
        grads.append(z.grad)
    assert not torch.allclose(grads[0], grads[1])  # the weights' own gradient is part of the code's gradient


def test_bfloat16_stays_finite():
    z1, z2 = views(batch=64, dim=16, seed=5, dtype=torch.float32)
    z1 = z1.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = hcl_loss(z1, z2.to(torch.bfloat16), temperature=0.1, beta=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad.float()).all()


@pytest.mark.parametrize("kwargs, match", [(dict(beta=-1.0), "beta"), (dict(tau_plus=1.0), "tau_plus"),
                                           (dict(temperature=0.0), "temperature")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hcl_loss(*views(), **kwargs)


@pytest.mark.parametrize("beta, tau_plus", [(1.0, 0.1), (0.0, 0.0)])
def test_synthetic_negatives_join_the_denominator_only(beta, tau_plus):
    z1, z2 = views(seed=6)
    synthetic = torch.rand(10, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1  # (2B, S)
    loss = hcl_loss(z1, z2, 0.5, beta, tau_plus, synthetic_logits=synthetic)
    assert loss.item() == pytest.approx(hcl_reference(z1, z2, 0.5, beta, tau_plus, synthetic_logits=synthetic),
                                        rel=1e-10)
    plain = hcl_loss(z1, z2, 0.5, beta, tau_plus)
    assert loss.item() > plain.item()
    assert torch.equal(hcl_loss(z1, z2, 0.5, beta, tau_plus, synthetic_logits=synthetic[:, :0]), plain)
    with pytest.raises(ValueError, match=r"synthetic_logits must be \(2B, S\) = \(10, S\)"):
        hcl_loss(z1, z2, synthetic_logits=synthetic[:3])
