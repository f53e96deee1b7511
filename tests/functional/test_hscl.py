"""hscl_loss against the float64 loop of the authors' nce_supervised_hard, H-SCL(tau), and its reductions."""

import math

import pytest
import torch
from reference import hscl_reference

from synco.functional import hcl_loss, hscl_loss, nt_xent_loss

LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 3])


def views(batch=7, dim=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(2, batch, dim, generator=g, dtype=dtype), dim=-1)
    return z[0], z[1]


@pytest.mark.parametrize("t, beta", [(0.5, 1.0), (0.5, 0.0), (0.2, 2.0), (0.7, 0.5)])
def test_h_scl_beta_matches_the_loop_reference(t, beta):
    z1, z2 = views(seed=int(10 * beta))
    loss = hscl_loss(z1, z2, LABELS, temperature=t, beta=beta)
    assert loss.item() == pytest.approx(hscl_reference(z1, z2, LABELS, t, beta), rel=1e-10)


@pytest.mark.parametrize("tau", [math.exp(-0.5), math.exp(-0.1), math.exp(0.6), 1e-6, 1e6])
def test_h_scl_tau_matches_the_loop_reference_including_empty_hard_sets(tau):
    z1, z2 = views(seed=3)
    loss = hscl_loss(z1, z2, LABELS, temperature=0.5, threshold=tau)
    assert loss.item() == pytest.approx(hscl_reference(z1, z2, LABELS, 0.5, threshold=tau), rel=1e-10)
    if tau in (1e-6, 1e6):  # every negative hard, or none (the fallback): both are SCL
        assert loss.item() == pytest.approx(hscl_loss(z1, z2, LABELS, beta=0.0).item(), rel=1e-12)


def test_distinct_labels_reduce_to_nt_xent_and_to_hcl_without_debiasing():
    z1, z2 = views(seed=4)
    distinct = torch.arange(7)
    assert hscl_loss(z1, z2, distinct, 0.5, beta=0.0).item() == pytest.approx(nt_xent_loss(z1, z2, 0.5).item(), rel=1e-12)
    tilted = hscl_loss(z1, z2, distinct, 0.5, beta=1.3).item()
    assert tilted == pytest.approx(hcl_loss(z1, z2, 0.5, beta=1.3, tau_plus=0.0, clamp=False).item(), rel=1e-12)


def test_an_anchor_without_other_class_rows_adds_zero():
    z1, z2 = views(batch=3, seed=5)
    assert hscl_loss(z1, z2, torch.zeros(3, dtype=torch.long)).item() == 0.0


def test_gradients_and_detached_weights():
    z1, z2 = views(batch=4, dim=3, seed=6)
    labels = torch.tensor([0, 1, 0, 1])
    z1.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: hscl_loss(a, z2, labels, 0.5, beta=1.0), (z1,))
    grads = []
    for detach in (False, True):
        z = z1.detach().clone().requires_grad_(True)
        hscl_loss(z, z2, labels, 0.5, beta=1.0, detach_weights=detach).backward()
        grads.append(z.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_bfloat16_stays_finite():
    z1, z2 = views(batch=64, dim=16, seed=7, dtype=torch.float32)
    z1 = z1.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = hscl_loss(z1, z2.to(torch.bfloat16), torch.arange(64) % 5, temperature=0.1, beta=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad.float()).all()


@pytest.mark.parametrize("kwargs, match", [(dict(beta=-0.5), "beta"), (dict(threshold=0.0), "threshold"),
                                           (dict(temperature=-1.0), "temperature")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hscl_loss(*views(), LABELS, **kwargs)


@pytest.mark.parametrize("threshold", [None, math.exp(-0.1)])
def test_synthetic_negatives_join_the_denominator_only(threshold):
    z1, z2 = views(seed=5)
    g = torch.Generator().manual_seed(1)
    synthetic = torch.rand(14, 3, generator=g, dtype=torch.float64) * 2 - 1  # (2B, S) un-tempered logits
    loss = hscl_loss(z1, z2, LABELS, temperature=0.5, beta=1.0, threshold=threshold, synthetic_logits=synthetic)
    expected = hscl_reference(z1, z2, LABELS, 0.5, 1.0, threshold, synthetic_logits=synthetic)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss.item() > hscl_loss(z1, z2, LABELS, threshold=threshold).item()  # more negatives: a larger loss
    empty = hscl_loss(z1, z2, LABELS, threshold=threshold, synthetic_logits=synthetic[:, :0])
    assert torch.equal(empty, hscl_loss(z1, z2, LABELS, threshold=threshold))  # S = 0 is plain H-SCL
    with pytest.raises(ValueError, match=r"synthetic_logits must be \(2B, S\) = \(14, S\)"):
        hscl_loss(z1, z2, LABELS, synthetic_logits=synthetic[:7])


@pytest.mark.parametrize("threshold", [None, math.exp(0.2)])
def test_compiles_as_one_graph_whatever_the_labels(threshold):
    # The number of positive pairs depends on the labels; no tensor of that size may appear, or torch.compile
    # breaks the graph there and compiles again for every new count.
    import torch._dynamo

    z1, z2 = views(dtype=torch.float32)
    explanation = torch._dynamo.explain(hscl_loss)(z1, z2, LABELS, 0.5, 1.0, threshold)
    assert explanation.graph_break_count == 0, explanation.break_reasons
