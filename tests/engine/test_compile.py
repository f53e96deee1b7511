"""``trainer.compile``: compiled parts compute what the eager ones compute, and nothing else changes.

Compilation is slow on 2 CPU cores, so the tests share shapes (Inductor's caches then reuse the kernels):
one tiny SynCo method for the in-process checks, the tiny Fashion-MNIST run for the end-to-end ones.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY

from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.engine.compile import compile_for_training, compiler_problem
from synco.methods import StepContext
from synco.negatives import SyntheticNegatives


def tiny_method(seed=0):
    cfg = load_config(None, TINY + ["run_dir=/unused"])
    return build_method(cfg, in_channels=1, num_train_images=256, seed=seed)


def test_the_compiler_works_on_this_machine():
    # scripts/setup.sh installs g++ where it is missing; a failure here names the toolchain's complaint.
    assert compiler_problem("cpu") is None


def test_compiled_negatives_equal_the_sampled_vectors_and_grad_goes_into_the_query_only():
    """The contract of SyntheticNegatives.logits holds on the compiled path: for the same generator state
    the logits are the dot products with ``sample``'s vectors, and d(sum w * logits)/dq = sum w * s."""
    g = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(16, 32, generator=g), dim=1)
    queue = F.normalize(torch.randn(512, 32, generator=g), dim=1)
    gen = SyntheticNegatives(num_hard=32, num_interpolate=8, num_extrapolate=8, num_mixup=8, num_noise=4,
                             num_perturb=4, num_adversarial=4, sigma=0.1, delta=0.2, eta=0.05)
    vectors = gen.sample(query, queue, torch.Generator().manual_seed(3)).vectors  # (B, S, D)
    gen.compile_path()
    q = query.clone().requires_grad_(True)
    queue_in = queue.clone().requires_grad_(True)
    logits = gen.logits(q, queue_in, torch.Generator().manual_seed(3))
    torch.testing.assert_close(logits, torch.einsum("bd,bsd->bs", query, vectors), rtol=0, atol=1e-6)
    weights = torch.randn(logits.shape, generator=g)
    (logits * weights).sum().backward()
    torch.testing.assert_close(q.grad, torch.einsum("bs,bsd->bd", weights, vectors), rtol=0, atol=1e-5)
    assert queue_in.grad is None  # the synthetic vectors are constants


def test_compiled_training_steps_equal_eager_ones():
    """Three SynCo steps (synthesis on, shuffle-BN, momentum update, enqueue), eager and compiled, from the
    same weights and random streams: the same losses, weights and queue. In float64, because in float32 the
    batch-norm backward amplifies rounding (the two differ by ~0.3 % in the first conv's gradient there, and
    by 1e-14 in float64: the compiled graph computes the same function, in another order)."""
    runs = []
    for compiled in (False, True):
        method = tiny_method().double()
        if compiled:
            names = method.compile_parts()
            assert {"encoder_q", "encoder_k", "criterion", "negatives"} <= set(names)
        optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.05, momentum=0.9)
        g = torch.Generator().manual_seed(7)
        images = torch.randn(3, 2, 64, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        losses = []
        for step in range(3):
            batch = Batch(views=(images[step, 0], images[step, 1]), index=torch.arange(64) + 64 * step)
            out = method.training_step(batch, StepContext(epoch=5, generator=g, shuffle_generator=g))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            method.after_step(out, batch)
            losses.append(out.loss.detach())
            assert out.synthetic_logits.shape == (64, 36)
        runs.append((torch.stack(losses), method.state_dict()))
    (eager_losses, eager_state), (compiled_losses, compiled_state) = runs
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-12, atol=1e-12)
    assert not torch.equal(eager_state["encoder_q.head.2.weight"], tiny_method().state_dict()["encoder_q.head.2.weight"])
    for name, value in eager_state.items():
        torch.testing.assert_close(compiled_state[name], value.to(compiled_state[name].dtype), rtol=1e-10,
                                   atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


def test_state_dict_and_evaluation_are_those_of_the_eager_model():
    method = tiny_method()
    eager_keys = list(method.state_dict())
    method.compile_parts()
    assert list(method.state_dict()) == eager_keys  # checkpoints load into eager and compiled runs alike
    assert method.encoder_q.is_compiled and method.criterion.is_compiled
    method.eval()  # evaluation mode runs the eager code (no recompilation for other batch sizes)
    with torch.no_grad():
        x = torch.randn(5, 1, 28, 28)
        torch.testing.assert_close(method.encoder_q(x), method.encoder_q.eager_forward(x), rtol=0, atol=0)


def test_a_missing_compiler_falls_back_to_eager_with_one_warning(monkeypatch):
    import synco.engine.compile as compile_module

    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore lines")

    monkeypatch.setattr(compile_module.torch, "compile", broken)
    method = tiny_method()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_for_training(method, "default", "cpu") is False
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "No working C++ compiler found" in message and "training eager" in message
    assert not method.encoder_q.is_compiled and method.negatives._compiled_logits is None


def test_a_misspelt_compile_mode_is_refused_before_any_work():
    from synco.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.compile_mode"):
        load_config(None, TINY + ["run_dir=/unused", "trainer.compile_mode=fast"])

