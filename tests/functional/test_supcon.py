"""supcon_loss against the float64 loop of SupCon's L_out and its invariants (method-notes section 9.4)."""

import pytest
import torch
from reference import supcon_reference

from synco.functional import nt_xent_loss, supcon_loss


def features(batch=6, views=2, dim=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(batch, views, dim, generator=g, dtype=dtype), dim=-1)


@pytest.mark.parametrize("views, mode, t, base", [(2, "all", 0.07, 0.07), (3, "all", 0.1, 0.07), (2, "one", 0.2, 0.5),
                                                  (1, "all", 0.3, 0.3)])
def test_matches_the_loop_reference(views, mode, t, base):
    f = features(views=views, seed=views)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    loss = supcon_loss(f, labels, temperature=t, base_temperature=base, contrast_mode=mode)
    assert loss.item() == pytest.approx(supcon_reference(f, labels, None, t, base, mode), rel=1e-10)


def test_asymmetric_float_mask_weighs_positives():
    f = features(seed=3)
    mask = torch.rand(6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = supcon_loss(f, mask=mask, temperature=0.2, base_temperature=0.2)
    assert loss.item() == pytest.approx(supcon_reference(f, None, mask, 0.2, 0.2), rel=1e-10)


def test_without_labels_and_with_distinct_labels_it_is_nt_xent():
    f = features(seed=4)
    expected = nt_xent_loss(f[:, 0], f[:, 1], temperature=0.5)
    assert supcon_loss(f, temperature=0.5, base_temperature=0.5).item() == pytest.approx(expected.item(), rel=1e-12)
    distinct = supcon_loss(f, torch.arange(6) * 3, temperature=0.5, base_temperature=0.5)
    assert distinct.item() == pytest.approx(expected.item(), rel=1e-12)


def test_view_order_does_not_matter_and_the_temperature_factor_scales():
    f, labels = features(seed=5), torch.tensor([0, 0, 1, 1, 2, 2])
    a = supcon_loss(f, labels, temperature=0.1)
    assert supcon_loss(f.flip(1), labels, temperature=0.1).item() == pytest.approx(a.item(), rel=1e-12)
    scaled = supcon_loss(f, labels, temperature=0.1, base_temperature=0.1)
    assert a.item() == pytest.approx(scaled.item() * 0.1 / 0.07, rel=1e-12)  # the README recipe's factor 1.43


def test_anchors_without_positives_add_zero_but_count():
    f = features(views=1, seed=6)
    assert supcon_loss(f, torch.arange(6)).item() == 0.0  # one view, distinct labels: no positive anywhere
    labels = torch.tensor([0, 0, 1, 2, 3, 4])  # only anchors 0 and 1 have a positive
    assert supcon_loss(f, labels, temperature=0.3).item() == pytest.approx(
        supcon_reference(f, labels, None, 0.3, 0.07), rel=1e-10)


def test_gradient_and_bfloat16():
    f = features(batch=4, dim=3, seed=7).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda x: supcon_loss(x, labels, temperature=0.5), (f,))
    low = features(batch=64, dim=16, seed=8, dtype=torch.float32).to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = supcon_loss(low, torch.arange(64) % 5, temperature=0.05)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(low.grad.float()).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=torch.arange(6), mask=torch.eye(6)), "labels or mask"), (dict(contrast_mode="two"), "contrast_mode"),
    (dict(temperature=0.0), "temperatures"), (dict(labels=torch.arange(5)), "labels must be"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        supcon_loss(features(), **kwargs)


@pytest.mark.parametrize("views, mode", [(2, "all"), (3, "one")])
def test_synthetic_negatives_join_the_denominator_only(views, mode):
    f = features(views=views, seed=4)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    anchors = 6 * views if mode == "all" else 6
    synthetic = torch.rand(anchors, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    loss = supcon_loss(f, labels, temperature=0.1, contrast_mode=mode, synthetic_logits=synthetic)
    expected = supcon_reference(f, labels, temperature=0.1, mode=mode, synthetic_logits=synthetic)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    plain = supcon_loss(f, labels, temperature=0.1, contrast_mode=mode)
    assert loss.item() > plain.item()  # more negatives in every denominator: a larger loss
    assert torch.equal(supcon_loss(f, labels, temperature=0.1, contrast_mode=mode, synthetic_logits=synthetic[:, :0]),
                       plain)  # S = 0 is plain SupCon
    with pytest.raises(ValueError, match=rf"synthetic_logits must be \(A, S\) with A = {anchors} anchors"):
        supcon_loss(f, labels, temperature=0.1, contrast_mode=mode, synthetic_logits=synthetic[:1])
