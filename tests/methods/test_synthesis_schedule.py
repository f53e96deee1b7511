"""The synthesis schedule: warm-up, stop epoch, linear ramps; logged per epoch; exact resume across its edges."""

import json

import pytest
import torch
from tiny_runs import tiny

from synco.config import ConfigError, load_config
from synco.engine.checkpoint import load_checkpoint
from synco.negatives import COUNT_KEYS
from synco.pipelines.pretrain import checkpoint_path, pretrain

FULL = (8, 8, 8, 4, 4, 4)
COUNTS = [f"method.negatives.{k}={c}" for k, c in zip(COUNT_KEYS, FULL)]


def method(*extra):
    from test_moco import method as build

    return build("synco", [*COUNTS, "method.negatives.num_hard=32", *extra])


def test_synthesis_runs_from_the_warm_up_to_the_stop_epoch():
    m = method("method.negatives.warmup_epochs=1", "method.negatives.stop_epoch=3")
    assert [m.synthesizes(e) for e in range(5)] == [False, True, True, False, False]
    assert [m.synthesis_counts(e) for e in range(5)] == [(0,) * 6, FULL, FULL, (0,) * 6, (0,) * 6]
    never = method("method.negatives.warmup_epochs=2")
    assert [never.synthesizes(e) for e in range(4)] == [False, False, True, True]


@pytest.mark.parametrize("ramp, shares", [("up", [1 / 4, 2 / 4, 3 / 4, 1]), ("down", [1, 3 / 4, 2 / 4, 1 / 4])])
def test_counts_ramp_linearly_over_the_synthesis_epochs(ramp, shares):
    m = method("method.negatives.warmup_epochs=1", "method.negatives.stop_epoch=5", f"method.negatives.ramp={ramp}")
    assert m.synthesis_counts(0) == (0,) * 6 and m.synthesis_counts(5) == (0,) * 6
    for epoch, share in zip(range(1, 5), shares):
        assert m.synthesis_counts(epoch) == tuple(round(c * share) for c in FULL)
    log = m.epoch_log(1)
    assert log["train/synthetic"] and log["train/synthetic_per_query"] == sum(round(c * shares[0]) for c in FULL)


def test_the_step_uses_the_epochs_counts():
    from synco.data.batch import Batch
    from synco.methods import StepContext
    from test_moco import images

    m = method("method.negatives.warmup_epochs=0", "method.negatives.stop_epoch=2", "method.negatives.ramp=up")
    batch = Batch(views=(images(0), images(1)), index=torch.arange(8))
    out = m.training_step(batch, StepContext(epoch=0, generator=torch.Generator().manual_seed(0)))
    assert out.synthetic_logits.shape == (8, sum(round(c / 2) for c in FULL))
    out = m.training_step(batch, StepContext(epoch=1, generator=torch.Generator().manual_seed(0)))
    assert out.synthetic_logits.shape == (8, sum(FULL))


def test_bad_schedules_are_named():
    with pytest.raises(ConfigError, match=r"stop_epoch=1 must be after method.negatives.warmup_epochs=1"):
        load_config(None, ["method.negatives.warmup_epochs=1", "method.negatives.stop_epoch=1"])
    with pytest.raises(ConfigError, match="ramp=up needs method.negatives.stop_epoch"):
        load_config(None, ["method.negatives.ramp=up"])
    with pytest.raises(ConfigError, match="ramp='sideways' is not allowed"):
        load_config(None, ["method.negatives.ramp=sideways", "method.negatives.stop_epoch=20"])


def test_a_run_logs_the_active_counts_and_resumes_exactly_across_the_stop(tmp_path):
    """Synthesis in epoch 1 only (warm-up 0, stop 1) of 2: straight against 1 epoch + --resume + 1 epoch."""
    settings = ("train.epochs=2", "method.negatives.warmup_epochs=0", "method.negatives.stop_epoch=1",
                "eval.baselines=false")
    pretrain(tiny(tmp_path / "straight", *settings))
    pretrain(tiny(tmp_path / "sliced", *settings, "train.stop_after=1"))
    pretrain(tiny(tmp_path / "sliced", *settings), resume=True)
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "train/loss" in r]
    assert [r["train/synthetic"] for r in epochs] == [True, False]
    assert [r["train/synthetic_per_query"] for r in epochs] == [36, 0]  # TINY: 8 + 8 + 8 + 4 + 4 + 4 per query
    assert [r["train/num_interpolate"] for r in epochs] == [8, 0]
    a, b = (load_checkpoint(checkpoint_path(tmp_path / name))["model"] for name in ("straight", "sliced"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_synco_v2s_setting_trains_a_vision_transformer_through_its_synthesis_window():
    """The CPU recipe of SynCo-v2's setting (timm ViT-Ti, symmetric, rising momentum, synthesis in epochs 1-2):
    one step before the window, one inside, one after; finite losses, gradients into the transformer."""
    from synco.data.batch import Batch
    from synco.methods import StepContext
    from synco.compose import build_method

    cfg = load_config("cifar10/synco_v2_vit_tiny", ["method.queue_size=64", "method.negatives.num_hard=16"])
    m = build_method(cfg, in_channels=3, num_train_images=64, seed=0)
    g = torch.Generator().manual_seed(0)
    views = torch.randn(2, 8, 3, 32, 32, generator=g)
    for epoch, synthetic in ((0, False), (1, True), (3, False)):
        out = m.training_step(Batch(views=(views[0], views[1]), index=torch.arange(8)),
                              StepContext(epoch=epoch, generator=g, shuffle_generator=g, progress=epoch / 4))
        assert torch.isfinite(out.loss) and (out.synthetic_logits is not None
                                                and out.synthetic_logits.shape[1] > 0) == synthetic
        m.zero_grad()
        out.loss.backward()
        assert m.encoder_q.backbone.net.patch_embed.proj.weight.grad.abs().sum() > 0
        m.after_step(out, Batch(views=(), index=torch.arange(8)))
    for name in ("deit_small", "swin_tiny"):  # the GPU recipes load and name the window
        gpu = load_config(f"imagenet/synco_v2_{name}_300ep")
        assert (gpu.method.negatives.warmup_epochs, gpu.method.negatives.stop_epoch, gpu.method.queue_size) == (30, 100, 4096)


def test_a_method_without_synthetic_negatives_refuses_their_settings_in_one_line():
    for name in ("byol", "scl", "swav"):
        with pytest.raises(ConfigError, match=rf"method.name={name} makes no synthetic negatives, so "
                                              r"method.negatives.\* does not apply to it \(methods that do: .*simclr, hcl, supcon, hscl"):
            load_config(None, [f"method.name={name}", "method.negatives.num_hard=3"])
