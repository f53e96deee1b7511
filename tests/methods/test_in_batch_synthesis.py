"""HCL, SupCon and H-SCL with SynCo's synthetic negatives from each anchor's hardest in-batch negatives
(other-class ones only for the supervised losses), in the denominator only."""

import math

import pytest
import torch
from reference import hcl_reference, hscl_reference, supcon_reference

from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.methods import StepContext

B = 8
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])  # 2 images per class: 2B - 4 = 12 other-class views per anchor
BASE = ["model.backbone=small_cnn", "model.embedding_dim=16", "model.bn_splits=1", "data.image_size=16",
        f"train.batch_size={B}"]
SYNTHESIS = ["method.negatives.num_hard=6", "method.negatives.num_interpolate=2", "method.negatives.num_extrapolate=2",
             "method.negatives.num_mixup=2", "method.negatives.num_noise=1", "method.negatives.num_perturb=1",
             "method.negatives.num_adversarial=1", "method.negatives.warmup_epochs=1"]
METHODS = ["hcl", "supcon", "hscl"]


def build(name, *extra):
    cfg = load_config(None, [*BASE, f"method.name={name}", *extra])
    return build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()


def batch():
    g = torch.Generator().manual_seed(5)
    views = torch.randn(2, B, 3, 16, 16, generator=g, dtype=torch.float64)
    return Batch(views=(views[0], views[1]), index=torch.arange(B), labels=LABELS)


def context(epoch):
    return StepContext(epoch=epoch, generator=torch.Generator().manual_seed(0),
                       shuffle_generator=torch.Generator().manual_seed(1))


def reference_loss(name, z1, z2, synthetic, method):
    c = method.criterion
    if name == "hcl":
        return hcl_reference(z1, z2, c.temperature, c.beta, c.tau_plus, c.clamp, synthetic_logits=synthetic)
    if name == "supcon":
        return supcon_reference(torch.stack([z1, z2], 1), LABELS, temperature=c.temperature,
                                base_temperature=c.base_temperature, synthetic_logits=synthetic)
    return hscl_reference(z1, z2, LABELS, c.temperature, c.beta, c.threshold, synthetic_logits=synthetic)


@pytest.mark.parametrize("name", METHODS)
def test_with_every_count_at_zero_and_during_the_warm_up_it_is_the_plain_method(name):
    plain = build(name).training_step(batch(), context(5)).loss
    assert torch.equal(build(name, "method.negatives.num_hard=6").training_step(batch(), context(5)).loss, plain)
    warm_up = build(name, *SYNTHESIS).training_step(batch(), context(0))
    assert warm_up.synthetic_logits is None and torch.equal(warm_up.loss, plain)


@pytest.mark.parametrize("name", METHODS)
def test_the_loss_is_the_float64_loop_with_each_anchors_synthetic_logits_in_its_denominator(name):
    method = build(name, *SYNTHESIS)
    out = method.training_step(batch(), context(1))
    assert out.synthetic_logits.shape == (2 * B, 9) and not out.synthetic_logits.requires_grad
    z1, z2 = out.z1.detach(), out.z2.detach()
    expected = reference_loss(name, z1, z2, out.synthetic_logits, method)
    assert out.loss.item() == pytest.approx(expected, rel=1e-10)
    assert out.loss.item() > reference_loss(name, z1, z2, None, method)  # more negatives: a larger loss
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in method.trainable_parameters() if p.grad is not None)
    assert method.epoch_log(1)["train/synthetic_per_query"] == 9


@pytest.mark.parametrize("name", ["supcon", "hscl"])
def test_supervised_forms_draw_from_other_classes_only_and_hcl_from_other_images(name):
    """The draws come from the rank-shared shuffle stream: redone here as vectors, every source of every anchor
    lies among its N hardest views of other classes (HCL: of other images)."""
    for method_name in (name, "hcl"):
        method = build(method_name, *SYNTHESIS)
        out = method.training_step(batch(), context(1))
        z = torch.cat([out.z1, out.z2]).detach()  # (2B, D)
        labels = LABELS.repeat(2) if method_name != "hcl" else None
        image = torch.arange(2 * B) % B
        exclude = image[:, None] == image[None, :]
        if labels is not None:
            exclude |= labels[:, None] == labels[None, :]
        sample = method.negatives.sample(z, z, generator=torch.Generator().manual_seed(1), queue_logits=z @ z.T,
                                         exclude=exclude)
        torch.testing.assert_close(out.synthetic_logits, torch.einsum("ad,asd->as", z, sample.vectors), rtol=1e-10,
                                   atol=1e-10)
        for a in range(2 * B):
            used = {int(r) for r in sample.index[a].flatten() if r >= 0}
            hardest = set((z[a] @ z.T).masked_fill(exclude[a], -math.inf).topk(6).indices.tolist())
            assert used and used <= hardest and not exclude[a, sorted(used)].any(), (method_name, a, used)


def test_queue_forms_and_single_view_anchors_refuse_synthesis_in_one_line():
    from synco.config import ConfigError

    with pytest.raises(ConfigError, match="needs method.negatives_from=batch"):
        load_config(None, [*BASE, "method.name=hscl", "method.negatives_from=queue", *SYNTHESIS])
    with pytest.raises(ConfigError, match="needs method.contrast_mode=all"):
        load_config(None, [*BASE, "method.name=supcon", "method.contrast_mode=one", *SYNTHESIS])
