"""MoCo-v2, MoCHI and SynCo are one method: SynCo with every count at 0 is MoCo-v2 exactly."""

import copy

import pytest
import torch
from reference import info_nce_reference

from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.methods import StepContext

SMALL = ["model.backbone=small_cnn", "model.bn_splits=2", "method.queue_size=64", "method.negatives.num_hard=16",
         "train.batch_size=8"]
ZERO = [f"method.negatives.{k}=0" for k in
        ("num_interpolate", "num_extrapolate", "num_mixup", "num_noise", "num_perturb", "num_adversarial")]


def method(name, extra=()):
    cfg = load_config(None, SMALL + [f"method.name={name}", *extra])
    return build_method(cfg, in_channels=3, num_train_images=1000, seed=0)


def images(seed):
    return torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def run_steps(model, steps=2, synthesize=True):
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    outs = []
    for s in range(steps):
        out = model.pair_step(images(2 * s), images(2 * s + 1), torch.arange(8) + 8 * s, synthesize, gen)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        model.after_step(out, Batch(views=(), index=torch.arange(8) + 8 * s))  # momentum update, enqueue
        outs.append(out)
    return outs


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_synco_with_all_counts_zero_equals_moco_v2():
    moco, synco = method("moco_v2"), method("synco", ZERO)
    assert_same_state(moco, synco)
    for a, b in zip(run_steps(moco, 3), run_steps(synco, 3)):
        assert torch.equal(a.loss, b.loss)
        assert torch.equal(a.queue_logits, b.queue_logits)
        assert a.synthetic_logits.shape[1] == b.synthetic_logits.shape[1] == 0
    assert_same_state(moco, synco)


def test_synco_during_warmup_equals_moco_v2():
    moco, synco = method("moco_v2"), method("synco")
    for a, b in zip(run_steps(moco, 2), run_steps(synco, 2, synthesize=False)):
        assert torch.equal(a.loss, b.loss)
    assert_same_state(moco, synco)


def test_synco_step_equals_info_nce_over_queue_and_its_synthetic_negatives():
    """A whole ``pair_step`` (encoders, key shuffle, synthesis) against the float64 loop on its own outputs."""
    synco = method("synco")
    keys = synco.queue.keys.clone()
    out = synco.pair_step(images(0), images(1), torch.arange(8), True, torch.Generator().manual_seed(4),
                          torch.Generator().manual_seed(9))
    assert out.synthetic_logits.shape == (8, 256 + 256 + 256 + 64 * 3)
    query, key = out.query.detach().double(), out.key.double()
    # The draws are made in the query's dtype (float32 here), so the sample is drawn from the float32 query.
    sample = synco.negatives.sample(out.query.detach(), keys, generator=torch.Generator().manual_seed(4))
    negatives = [list(keys.double()) + list(sample.vectors[b].double()) for b in range(8)]
    assert out.loss.item() == pytest.approx(info_nce_reference(query, key, negatives, 0.2), rel=1e-5)


def test_same_image_masking_with_synthesis_never_uses_own_keys_as_sources():
    """The queue holds older keys of this batch's images, made the hardest negatives there are: masked out of
    the loss, and never selected as hardest or used as a synthetic negative's source."""
    synco = method("synco", ["method.mask_same_image=true", "method.negatives.num_hard=8"])
    with torch.no_grad():
        query, key = synco.encoder_q(images(0)).double(), synco.encoder_k(images(1)).double()
    synco.queue.keys = synco.queue.keys.double()
    index = torch.arange(8) + 100
    synco.queue.enqueue(query[[1, 0, 3, 2, 5, 4]], index[[1, 0, 3, 2, 5, 4]])  # rows 0-5: own image of queries
    synco.queue.enqueue(query[:6] * 0.9 + 0.1 * key[:6], index[:6])  # rows 6-11: a second key of images 0-5
    own = synco.queue.same_image_mask(index)  # (8, 64)
    assert own.sum().item() == 12
    out = synco.loss(query, key, index, True, torch.Generator().manual_seed(5), return_sources=True)
    rows = torch.cat([out.sources.hardest, out.sources.index.flatten(1)], dim=1)  # (8, N + 2S)
    for b in range(8):
        used = {r for r in rows[b].tolist() if r >= 0}
        assert not used & set(own[b].nonzero().flatten().tolist()), b
    sample = synco.negatives.sample(query, synco.queue.keys, generator=torch.Generator().manual_seed(5), exclude=own)
    negatives = [[synco.queue.keys[k] for k in range(64) if not own[b, k]] + list(sample.vectors[b]) for b in range(8)]
    assert out.loss.item() == pytest.approx(info_nce_reference(query, key, negatives, 0.2), rel=1e-10)


def test_mochi_recipe_maps_s_and_s_prime_to_mixup_and_query_mixes():
    """configs/pretrain/cifar10/mochi.yaml has s = 256 negative-negative mixes and s' = 64 query mixes."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "configs/pretrain/cifar10/mochi.yaml"
    cfg = load_config(str(recipe), ["method.queue_size=512"])
    m = build_method(cfg, in_channels=3, num_train_images=1000, seed=0)
    assert m.negatives.counts == (64, 0, 256, 0, 0, 0) and m.negatives.num_hard == 256
    assert m.negatives.alpha_max == 0.5  # MoCHI's query weight below 0.5


def test_step_sizes_reach_the_generator_unswapped():
    synco = method("synco", ["method.negatives.sigma=0.03", "method.negatives.delta=0.2", "method.negatives.eta=0.07",
                             "method.negatives.alpha_max=0.4", "method.negatives.beta_max=1.3",
                             "method.negatives.extrapolation=reference"])
    gen = synco.negatives
    assert (gen.sigma, gen.delta, gen.eta, gen.alpha_max, gen.beta_max) == (0.03, 0.2, 0.07, 0.4, 1.3)
    assert gen.extrapolation == "reference"


def test_loss_equals_reference_with_the_methods_own_negatives():
    synco = method("synco")
    with torch.no_grad():
        query, key = synco.encoder_q(images(0)).double(), synco.encoder_k(images(1)).double()
    synco.queue.keys = synco.queue.keys.double()
    out = synco.loss(query, key, None, True, torch.Generator().manual_seed(5))
    sample = synco.negatives.sample(query, synco.queue.keys, generator=torch.Generator().manual_seed(5))
    negatives = [list(synco.queue.keys) + list(sample.vectors[b]) for b in range(8)]
    assert out.loss.item() == pytest.approx(info_nce_reference(query, key, negatives, 0.2), rel=1e-10)
    # Sources only on request (the analyses), from the same draws: same loss, rows among the hardest.
    assert out.sources is None
    traced = synco.loss(query, key, None, True, torch.Generator().manual_seed(5), return_sources=True)
    assert traced.loss.item() == out.loss.item()
    assert torch.equal(traced.sources.index[..., 0], sample.index[..., 0])


def test_mochi_setting_uses_types_1_and_3_only():
    m = method("mochi", ["method.negatives.num_extrapolate=0", "method.negatives.num_noise=0",
                         "method.negatives.num_perturb=0", "method.negatives.num_adversarial=0"])
    assert m.negatives.counts == (256, 0, 256, 0, 0, 0)


def test_same_image_masking_removes_own_keys_from_the_loss():
    synco = method("moco_v2", ["method.mask_same_image=true"])
    with torch.no_grad():
        query, key = synco.encoder_q(images(0)).double(), synco.encoder_k(images(1)).double()
    synco.queue.keys = synco.queue.keys.double()
    synco.queue.enqueue(key[:4] * 0 + query[:4], torch.arange(4))  # the query's own image, as hard as it gets
    out = synco.loss(query, key, torch.arange(8), synthesize=False)
    own = synco.queue.same_image_mask(torch.arange(8))
    negatives = [[synco.queue.keys[k] for k in range(64) if not own[b, k]] for b in range(8)]
    assert out.loss.item() == pytest.approx(info_nce_reference(query, key, negatives, 0.2), rel=1e-10)


def test_masking_defaults_on_when_queue_holds_the_whole_dataset():
    cfg = load_config(None, SMALL)
    assert build_method(cfg, 3, num_train_images=64, seed=0).mask_same_image
    assert not build_method(cfg, 3, num_train_images=65, seed=0).mask_same_image
    cfg = load_config(None, SMALL + ["method.mask_same_image=false"])
    assert not build_method(cfg, 3, num_train_images=10, seed=0).mask_same_image


def test_key_encoder_starts_as_copy_gets_no_gradient_and_follows_momentum():
    m = method("synco")
    for pq, pk in zip(m.encoder_q.parameters(), m.encoder_k.parameters()):
        assert torch.equal(pq, pk) and not pk.requires_grad
    before = copy.deepcopy(m.encoder_k.state_dict())
    run_steps(m, 1)
    after = m.encoder_k.state_dict()
    name = next(n for n, _ in m.encoder_k.named_parameters())
    q = dict(m.encoder_q.named_parameters())[name]
    torch.testing.assert_close(after[name], 0.999 * before[name] + 0.001 * q.detach())


def test_shuffled_keys_come_back_in_batch_order():
    m = method("moco_v2", ["model.bn_splits=1"])
    m.eval()  # without batch statistics the key of image i must not depend on the permutation
    x = images(0)
    m.shuffle_keys = False
    plain = m.encode_keys(x)
    m.shuffle_keys = True
    torch.testing.assert_close(m.encode_keys(x, torch.Generator().manual_seed(1)), plain)


def test_head_runs_in_float32_under_bf16_autocast():
    from synco.losses import InfoNCE
    from synco.memory import NegativeQueue
    from synco.methods import Encoder, MoCo
    from synco.negatives import SyntheticNegatives

    torch.manual_seed(0)
    method = MoCo(Encoder(torch.nn.Identity(), torch.nn.Identity()), NegativeQueue(64, 8), InfoNCE(0.2),
                  negatives=SyntheticNegatives(num_hard=8, num_interpolate=2, num_extrapolate=2, num_mixup=2,
                                               num_noise=2, num_perturb=2, num_adversarial=2))
    query = torch.nn.functional.normalize(torch.randn(4, 8), dim=1).to(torch.bfloat16).requires_grad_(True)
    key = torch.nn.functional.normalize(torch.randn(4, 8), dim=1).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method.loss(query, key, generator=torch.Generator().manual_seed(0))
    assert out.queue_logits.dtype == out.synthetic_logits.dtype == out.loss.dtype == torch.float32
    out.loss.backward()
    assert query.grad.dtype == torch.bfloat16 and torch.isfinite(query.grad.float()).all()


def test_label_aware_synthesis_never_selects_same_class_rows_but_keeps_them_as_negatives():
    synco = method("synco", ["method.negatives.exclude_same_class=true", "method.negatives.num_hard=8"])
    assert synco.needs_labels
    with torch.no_grad():
        query, key = synco.encoder_q(images(0)).double(), synco.encoder_k(images(1)).double()
    synco.queue.keys = synco.queue.keys.double()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    # The hardest rows there are: each query's own direction, enqueued with a label of the query's class.
    synco.queue.enqueue(query[[3, 4, 5, 0, 1, 2, 6, 7]] * 0.99 + 0.01 * key[:8], torch.arange(8) + 200,
                        labels[[3, 4, 5, 0, 1, 2, 6, 7]])
    same = synco.queue.same_class_mask(labels)
    out = synco.loss(query, key, None, True, torch.Generator().manual_seed(5), return_sources=True, labels=labels)
    rows = torch.cat([out.sources.hardest, out.sources.index.flatten(1)], dim=1)
    for b in range(8):
        assert not {r for r in rows[b].tolist() if r >= 0} & set(same[b].nonzero().flatten().tolist()), b
    sample = synco.negatives.sample(query, synco.queue.keys, generator=torch.Generator().manual_seed(5), exclude=same)
    negatives = [list(synco.queue.keys) + list(sample.vectors[b]) for b in range(8)]  # same-class rows stay in
    assert out.loss.item() == pytest.approx(info_nce_reference(query, key, negatives, 0.2), rel=1e-10)
    with pytest.raises(ValueError, match="exclude_same_class needs the batch's labels"):
        synco.loss(query, key, None, True)


def test_after_step_enqueues_the_batch_labels():
    synco = method("synco")
    out = synco.pair_step(images(0), images(1), torch.arange(8), False, torch.Generator().manual_seed(0))
    synco.after_step(out, Batch(views=(), index=torch.arange(8) + 40, labels=torch.arange(8) % 3))
    assert synco.queue.labels[:8].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert synco.queue.image_index[:8].tolist() == list(range(40, 48))


def test_mocov2plus_is_the_symmetric_loss_with_a_queue_per_view_and_a_rising_momentum():
    from synco.functional import mocov2plus_loss

    m = method("moco_v2", ["method.symmetric=true", "method.momentum=0.99", "method.momentum_end=1.0",
                           "model.shuffle_keys=false", "model.bn_splits=1"]).double()
    x1, x2 = images(0).double(), images(1).double()
    view_1_keys, view_2_keys = m.queue.keys.clone(), m.second_queue.keys.clone()
    out = m.training_step(Batch(views=(x1, x2), index=torch.arange(8)), StepContext(progress=0.5))
    with torch.no_grad():
        q1, q2, k1, k2 = m.encoder_q(x1), m.encoder_q(x2), m.encoder_k(x1), m.encoder_k(x2)
    expected = mocov2plus_loss(q1, q2, k1, k2, torch.stack([view_1_keys, view_2_keys]), 0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert out.momentum == pytest.approx(0.995)  # halfway up the cosine from 0.99 to 1.0
    assert m.momentum_at(0.0) == pytest.approx(0.99) and m.momentum_at(1.0) == pytest.approx(1.0)
    m.after_step(out, Batch(views=(), index=torch.arange(8)))
    torch.testing.assert_close(m.queue.keys[:8], k1)  # view-1 keys to the first queue
    torch.testing.assert_close(m.second_queue.keys[:8], k2)  # view-2 keys to the second


def test_momentum_end_below_the_momentum_is_refused():
    from synco.config import ConfigError

    with pytest.raises(ConfigError, match=r"method.momentum_end=0.9 must lie in \[method.momentum, 1\]"):
        load_config(None, SMALL + ["method.momentum=0.99", "method.momentum_end=0.9"])
