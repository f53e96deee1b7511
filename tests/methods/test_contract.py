"""The method contract, checked for every registered method from its CIFAR-10 recipe: one step gives a finite loss
with gradient in the trainable parameters only, ``after_step`` runs, ``compile_parts`` names what it compiles, and
a run resumed from a step's state dict and optimizer state (loaded into a build with other initial weights)
continues exactly as the straight run. Two processes equal one where a method gathers: test_simclr.py,
test_two_view.py, test_moco.py and test_non_contrastive_methods.py."""

import copy
import math

import pytest
import torch

from synco.compose import build_method
from synco.config import load_config, resolve_recipe
from synco.data.batch import Batch
from synco.methods import StepContext
from synco.registry import METHODS

BATCH, SIZE, EPOCH = 8, 16, 2  # epoch 2: past every recipe's warm-up (synthesis, SwAV's queue)
SMALL = ["data.image_size=16", "train.batch_size=8"]


def recipe_of(name):
    return resolve_recipe(f"cifar10/{name}")


# Settings that put a method's own state boundaries inside the three steps of the resume test (SwAV: the
# prototypes thaw at step 2, the queue is full from step 2), so that state missing from the state dict shows.
BOUNDARIES = {"swav": ["method.freeze_prototypes_steps=2", "method.queue_size=16"]}


def build(name, seed=0):
    cfg = load_config(recipe_of(name), SMALL + BOUNDARIES.get(name, []))
    assert cfg.method.name == name
    return build_method(cfg, in_channels=3, num_train_images=64, seed=seed)


def batch(step):
    g = torch.Generator().manual_seed(100 + step)
    views = tuple(torch.randn(BATCH, 3, SIZE, SIZE, generator=g) for _ in range(2))
    return Batch(views=views, index=torch.arange(BATCH) + BATCH * step, labels=torch.arange(BATCH) % 4)


def context(step):
    return StepContext(epoch=EPOCH, generator=torch.Generator().manual_seed(step),
                       shuffle_generator=torch.Generator().manual_seed(50 + step), progress=step / 10)


def train(method, optimizer, steps):
    losses = []
    for step in steps:
        torch.manual_seed(step)  # any draw from the global generator repeats in the resumed run
        out = method.training_step(batch(step), context(step))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        method.after_step(out, batch(step))
        losses.append(out.loss.item())
    return losses


def optimizer_for(method):
    return torch.optim.SGD(method.trainable_parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)


NAMES = METHODS.names()


def test_every_registered_method_has_a_cifar10_recipe():
    missing = [n for n in NAMES if not recipe_of(n).exists()]
    assert not missing, f"methods without configs/pretrain/cifar10/<name>.yaml: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_one_step_trains_only_the_trainable_parameters(name):
    method = build(name).train()
    out = method.training_step(batch(0), context(0))
    assert out.loss.dim() == 0 and math.isfinite(out.loss.item()) and out.loss.requires_grad
    out.loss.backward()
    trainable = {id(p) for p in method.trainable_parameters()}
    assert trainable, "no trainable parameters"
    reached = [n for n, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert reached, "the loss reaches no parameter"
    assert all(id(p) in trainable for n, p in method.named_parameters() if n in reached), \
        "the loss has gradient in a parameter the optimizer does not update"
    method.after_step(out, batch(0))
    features = method.eval()(batch(0).views[0])
    assert features.shape[0] == BATCH and torch.isfinite(features).all()
    compiled = method.compile_parts()  # wraps lazily: compiling itself is the slow compile tests' business
    assert any("encoder" in part for part in compiled), compiled


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_run_continues_exactly(name):
    straight = build(name)
    optimizer = optimizer_for(straight)
    losses = train(straight, optimizer, [0, 1, 2])

    first = build(name)
    first_optimizer = optimizer_for(first)
    train(first, first_optimizer, [0])
    saved = copy.deepcopy({"model": first.state_dict(), "optimizer": first_optimizer.state_dict()})
    resumed = build(name, seed=7)  # other initial weights: everything must come from the saved state
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = optimizer_for(resumed)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    assert train(resumed, resumed_optimizer, [1, 2]) == losses[1:]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    images = batch(3).views[0]
    torch.testing.assert_close(resumed.eval()(images), straight.eval()(images), rtol=0, atol=0)
