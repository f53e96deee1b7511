"""SimCLR with SynCo's synthetic negatives built per anchor from its hardest in-batch negatives."""

import math

import pytest
import torch
import torch.nn.functional as F

from synco.compose import build_method
from synco.config import ConfigError, load_config
from synco.data.batch import Batch
from synco.functional import nt_xent_loss
from synco.methods import StepContext

B = 6
BASE = ["method.name=simclr", "model.backbone=small_cnn", "model.embedding_dim=16", "model.bn_splits=1",
        "data.image_size=16", f"train.batch_size={B}", "method.negatives.num_hard=4"]
ALL_SIX = [f"method.negatives.{k}={n}" for k, n in (("num_interpolate", 3), ("num_extrapolate", 3), ("num_mixup", 3),
                                                     ("num_noise", 2), ("num_perturb", 2), ("num_adversarial", 2))]


def simclr(*extra):
    return build_method(load_config(None, [*BASE, *extra]), in_channels=3, num_train_images=100, seed=0).double()


def batch():
    g = torch.Generator().manual_seed(3)
    views = torch.randn(2, B, 3, 16, 16, generator=g, dtype=torch.float64)
    return Batch(views=(views[0], views[1]), index=torch.arange(B))


def test_with_every_count_at_zero_it_is_plain_simclr():
    plain, zero = simclr(), simclr("method.negatives.num_interpolate=0")
    out = zero.training_step(batch(), StepContext(generator=torch.Generator().manual_seed(0)))
    assert torch.equal(out.loss, plain.training_step(batch(), StepContext()).loss)
    assert out.synthetic_logits is None


def test_synthetic_negatives_come_from_the_anchors_hardest_other_images_and_join_the_denominator_only():
    m = simclr(*ALL_SIX)
    out = m.training_step(batch(), StepContext(generator=torch.Generator().manual_seed(0)))
    z1, z2 = out.z1.detach(), out.z2.detach()
    z = torch.cat([z1, z2])  # (2B, D)
    synthetic = out.synthetic_logits  # (2B, S)
    assert synthetic.shape == (2 * B, 15)
    # The same draws as vectors: every source lies among the anchor's hardest other-image rows.
    own = torch.arange(2 * B)
    exclude = F.one_hot(own, 2 * B).bool() | F.one_hot((own + B) % (2 * B), 2 * B).bool()
    sample = m.negatives.sample(z, z, generator=torch.Generator().manual_seed(0), queue_logits=z @ z.T,
                                exclude=exclude)
    sources = sample.index  # (2B, S, 2) queue rows used (mixup: two), -1 where unused
    for i in range(2 * B):
        used = {int(r) for r in sources[i].flatten() if r >= 0}
        assert used and i not in used and (i + B) % (2 * B) not in used, (i, used)
        masked = (z[i] @ z.T).masked_fill(exclude[i], -math.inf)
        hardest = set(masked.topk(4).indices.tolist())
        assert used <= hardest, (i, used, hardest)
    torch.testing.assert_close(synthetic, torch.einsum("ad,asd->as", z, sample.vectors), rtol=1e-10, atol=1e-10)
    # The loss: NT-Xent with each anchor's synthetic logits in its denominator, as a float64 loop.
    t = m.criterion.temperature
    total = 0.0
    for i in range(2 * B):
        positive = float(z[i] @ z[(i + B) % (2 * B)]) / t
        others = [float(z[i] @ z[k]) / t for k in range(2 * B) if k != i] + [float(s) / t for s in synthetic[i]]
        total += -(positive - math.log(sum(math.exp(v) for v in others)))
    assert out.loss.item() == pytest.approx(total / (2 * B), rel=1e-10)
    assert out.loss.item() > nt_xent_loss(z1, z2, t).item()  # more negatives: a larger loss


def test_the_schedule_applies_to_simclr_too():
    m = simclr(*ALL_SIX, "method.negatives.warmup_epochs=1", "method.negatives.stop_epoch=2")
    assert m.training_step(batch(), StepContext(epoch=0)).synthetic_logits is None
    assert m.training_step(batch(), StepContext(epoch=1, generator=torch.Generator())).synthetic_logits is not None
    assert m.training_step(batch(), StepContext(epoch=2)).synthetic_logits is None
    assert m.epoch_log(1)["train/synthetic_per_query"] == 15 and m.epoch_log(2)["train/synthetic"] is False


def test_an_n_beyond_the_in_batch_negatives_is_named():
    with pytest.raises(ConfigError, match=r"num_hard=11 must lie in \[1, 10\]"):
        load_config(None, [*BASE, "method.negatives.num_hard=11", "method.negatives.num_mixup=2"])
