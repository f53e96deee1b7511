"""MoCo-v2+'s cosine momentum is applied, step by step, as its formula says (not only computed)."""

import math

import pytest
import torch
from tiny_runs import tiny

from synco.data.batch import Batch
from synco.methods import MoCo, StepContext
from synco.pipelines.pretrain import pretrain


def expected_momentum(m0: float, end: float, progress: float) -> float:
    """CaSSLe's update_tau: end - (end - m0) (cos(pi progress) + 1) / 2."""
    return end - (end - m0) * (math.cos(math.pi * progress) + 1) / 2


def test_the_key_encoder_moves_by_the_scheduled_momentum():
    from test_moco import images, method

    m = method("moco_v2", ["method.symmetric=true", "method.momentum=0.9", "method.momentum_end=1.0",
                           "model.shuffle_keys=false", "model.bn_splits=1"]).double()
    with torch.no_grad():  # make the two encoders differ, so that the update is visible
        for p in m.encoder_q.parameters():
            p.add_(0.1)
    out = m.training_step(Batch(views=(images(0).double(), images(1).double()), index=torch.arange(8)),
                          StepContext(progress=0.25))
    before_k = {n: p.detach().clone() for n, p in m.encoder_k.named_parameters()}
    q = {n: p.detach().clone() for n, p in m.encoder_q.named_parameters()}
    m.after_step(out, Batch(views=(), index=torch.arange(8)))
    momentum = expected_momentum(0.9, 1.0, 0.25)
    for name, p in m.encoder_k.named_parameters():
        torch.testing.assert_close(p, momentum * before_k[name] + (1 - momentum) * q[name], rtol=1e-12, atol=1e-12)


def test_the_training_loop_applies_the_schedule_at_every_step(tmp_path, monkeypatch):
    """2 epochs x 4 steps: the momentum applied at global step s is the formula at progress s / 8."""
    applied = []
    real = MoCo.momentum_update

    def spy(self, momentum=None):
        applied.append(momentum)
        return real(self, momentum)

    monkeypatch.setattr(MoCo, "momentum_update", spy)
    pretrain(tiny(tmp_path, "method.name=moco_v2", "method.symmetric=true", "method.momentum=0.9",
                  "method.momentum_end=1.0", "train.epochs=2", "eval.baselines=false", "eval.analysis_every=null"))
    assert len(applied) == 8
    assert applied == pytest.approx([expected_momentum(0.9, 1.0, s / 8) for s in range(8)], abs=1e-12)
