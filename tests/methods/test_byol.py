"""BYOL on the contract: the loss of its own tensors, a rising target momentum, no gradient into the target."""

import math

import pytest
import torch

from synco.compose import build_method
from synco.config import ConfigError, load_config
from synco.data.batch import Batch
from synco.methods import StepContext


def test_byol_step_loss_momentum_and_target():
    cfg = load_config(None, ["method.name=byol", "model.backbone=small_cnn", "model.embedding_dim=16",
                             "method.predictor_hidden=32", "train.batch_size=8"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(2))
    out = method.training_step(Batch(views=views, index=torch.arange(8)), StepContext(progress=0.25))
    with torch.no_grad():
        t1, t2 = method.target(views[0]), method.target(views[1])
    p1, p2 = out.p1.detach(), out.p2.detach()

    def d(a, b):
        return sum(2 - 2 * float(a[i] @ b[i]) / math.sqrt(float(a[i] @ a[i]) * float(b[i] @ b[i])) for i in range(8)) / 8

    assert out.loss.item() == pytest.approx(d(p1, t2) + d(p2, t1), rel=1e-10)
    assert out.momentum == pytest.approx(1.0 - 0.01 * (math.cos(math.pi * 0.25) + 1) / 2)
    out.loss.backward()
    assert all(p.grad is None for p in method.target.parameters())
    trainable = {id(p) for p in method.trainable_parameters()}
    assert not trainable & {id(p) for p in method.target.parameters()}
    before = [p.clone() for p in method.target.parameters()]
    method.after_step(out, Batch(views=(), index=torch.arange(8)))
    online = list(method.encoder.parameters())
    for b, t, o in zip(before, method.target.parameters(), online):
        torch.testing.assert_close(t, out.momentum * b + (1 - out.momentum) * o.detach())


def test_byol_momentum_settings_are_checked():
    with pytest.raises(ConfigError, match="momentum_end"):
        load_config(None, ["method.name=byol", "method.momentum=0.99", "method.momentum_end=0.9"])
