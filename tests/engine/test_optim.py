"""Optimizers and the learning-rate schedule of pretraining (train.optimizer, train.lr_warmup_epochs)."""

import math

import pytest
import torch
from torch import nn

from synco.config import load_config
from synco.engine.optim import build_optimizer, lr_factor, parameter_groups


def test_schedule_without_warmup_is_mocos_cosine_and_warmup_is_linear():
    for epoch in range(10):
        assert lr_factor(epoch, 10, "cosine") == 0.5 * (1 + math.cos(math.pi * epoch / 10))
    assert [lr_factor(e, 10, "cosine", warmup_epochs=4) for e in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 10, "cosine", warmup_epochs=4) == 1.0  # the cosine starts after the warm-up
    assert lr_factor(7, 10, "cosine", warmup_epochs=4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert lr_factor(5, 10, "constant", warmup_epochs=2) == 1.0


def test_bias_and_norm_are_excluded_from_weight_decay_when_asked():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    one = parameter_groups(model.parameters(), 1e-4, exclude_bias_and_norm=False)
    assert len(one) == 1 and one[0]["weight_decay"] == 1e-4
    decayed, exempt = parameter_groups(model.parameters(), 1e-4, exclude_bias_and_norm=True)
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(exempt["params"]) == 4 and exempt["weight_decay"] == 0.0  # 2 biases, BN weight and bias


def test_lars_step_matches_the_papers_update_and_skips_exempt_parameters():
    """You et al. 2017, Alg. 1 (first step, momentum buffer empty): local lr = eta |w| / (|g| + wd |w|),
    w <- w - lr * local_lr * (g + wd w); exempt parameters (no weight decay) take a plain SGD step."""
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    cfg = load_config(None, ["train.optimizer=lars", "train.lr=0.3", "train.weight_decay=1e-2",
                             "train.exclude_bias_and_norm=true", "train.lars_trust_coefficient=0.02"])
    optimizer = build_optimizer(layer.parameters(), cfg.train)
    layer(torch.randn(7, 5)).pow(2).sum().backward()
    g, gb = layer.weight.grad.clone(), layer.bias.grad.clone()
    optimizer.step()
    local = 0.02 * w0.norm() / (g.norm() + 1e-2 * w0.norm())
    torch.testing.assert_close(layer.weight.detach(), w0 - 0.3 * local * (g + 1e-2 * w0))
    torch.testing.assert_close(layer.bias.detach(), b0 - 0.3 * gb)


@pytest.mark.parametrize(("name", "kind"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                            ("adamw", torch.optim.AdamW)])
def test_optimizer_by_name(name, kind):
    cfg = load_config(None, [f"train.optimizer={name}", "train.lr=0.001"])
    assert type(build_optimizer(nn.Linear(2, 2).parameters(), cfg.train)) is kind


def test_unknown_optimizer_is_named():
    from synco.config import ConfigError

    with pytest.raises(ConfigError, match="train.optimizer='rmsprop' is not allowed"):
        load_config(None, ["train.optimizer=rmsprop"])
