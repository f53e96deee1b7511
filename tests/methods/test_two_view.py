"""HCL, SupCon, SCL and H-SCL as methods: the step's loss is the paper's loss of its own embeddings, labels
are required where the loss is supervised, and two processes train exactly as one on the whole batch."""

import math
from pathlib import Path

import hscl_ddp_worker as worker
import pytest
import torch
from reference import hcl_reference, hscl_reference, supcon_reference
from two_processes import run_worker

from synco.compose import build_method
from synco.config import ConfigError, load_config
from synco.data.batch import Batch
from synco.methods import StepContext

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["model.backbone=small_cnn", "model.embedding_dim=16", "model.bn_splits=1", "train.batch_size=6"]
LABELS = torch.tensor([0, 1, 0, 2, 1, 0])


def step(name, *extra, labels=LABELS):
    cfg = load_config(None, SMALL + [f"method.name={name}", *extra])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    out = method.training_step(Batch(views=views, index=torch.arange(6), labels=labels), StepContext())
    with torch.no_grad():
        z1, z2 = method.encoder(views[0]), method.encoder(views[1])
    return method, out, z1, z2


def test_hcl_step_is_the_hard_estimator_of_its_embeddings():
    _, out, z1, z2 = step("hcl", "method.beta=1.5", "method.tau_plus=0.05", labels=None)
    assert out.loss.item() == pytest.approx(hcl_reference(z1, z2, 0.5, 1.5, 0.05, True), rel=1e-10)


def test_supcon_step_is_l_out_of_its_embeddings():
    _, out, z1, z2 = step("supcon", "method.temperature=0.2", "method.base_temperature=0.1")
    expected = supcon_reference(torch.stack([z1, z2], 1), LABELS, None, 0.2, 0.1)
    assert out.loss.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name, extra, beta, tau", [
    ("scl", (), 0.0, None), ("hscl", ("method.beta=2.0",), 2.0, None),
    ("hscl", (f"method.threshold={math.exp(-0.5)}",), None, math.exp(-0.5)),
])
def test_scl_and_hscl_steps(name, extra, beta, tau):
    method, out, z1, z2 = step(name, *extra)
    expected = hscl_reference(z1, z2, LABELS, 0.5, beta if beta is not None else 1.0, tau)
    assert out.loss.item() == pytest.approx(expected, rel=1e-10)
    out.loss.backward()
    assert all(p.grad is not None for p in method.trainable_parameters())


def test_supervised_methods_refuse_unlabelled_batches_and_data():
    from types import SimpleNamespace

    from synco.engine.inputs import check_training_labels

    for name in ("supcon", "scl", "hscl"):
        with pytest.raises(ValueError, match="needs labels"):
            step(name, labels=None)
    data = SimpleNamespace(labels=torch.tensor([0, 1, -1, -1]), classes=["a", "b"])
    with pytest.raises(ValueError, match="method.name=supcon needs labels, and 2 of the 4"):
        check_training_labels(data, "supcon")
    data.labels = torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match="1 pretraining labels lie outside the 2 classes"):
        check_training_labels(data, "hscl")
    assert not build_method(load_config(None, SMALL + ["method.name=hcl"]), 3, 10, 0).needs_labels


@pytest.mark.parametrize("setting, match", [
    (["method.name=hscl", "method.beta=-1"], "method.beta"), (["method.name=hscl", "method.threshold=0"], "method.threshold"),
    (["method.name=hcl", "method.tau_plus=1"], "method.tau_plus"), (["method.name=supcon", "method.contrast_mode=two"],
                                                                    "method.contrast_mode"),
])
def test_bad_settings_are_named_before_work(setting, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, setting)


def test_recipes_carry_the_papers_settings():
    hcl = load_config(str(ROOT / "configs/pretrain/stl10/hcl_400ep.yaml"))
    assert (hcl.method.temperature, hcl.method.beta, hcl.method.tau_plus, hcl.train.optimizer, hcl.train.lr) == (
        0.5, 1.0, 0.1, "adam", 1e-3)
    hscl = load_config(str(ROOT / "configs/pretrain/cifar100/hscl_200ep.yaml"))
    assert hscl.method.temperature == 0.5 and hscl.model.small_stem and hscl.train.epochs == 200
    tau = load_config(str(ROOT / "configs/pretrain/cifar10/hscl_tau.yaml"))
    assert tau.method.threshold == pytest.approx(math.exp(-0.5))


@pytest.mark.slow
@pytest.mark.parametrize("synthesis", [False, True], ids=["plain", "with_synthesis"])
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path, synthesis):
    result = run_worker(worker.__file__, tmp_path / "hscl_ddp.pt", *(["synthesis"] if synthesis else []))
    method = worker.build(synthesis)
    optimizer = worker.optimizer_for(method)
    losses = []
    for step, (view_1, view_2, _, labels) in enumerate(worker.batches()):
        out = method.training_step(Batch(views=(view_1, view_2), index=torch.arange(8), labels=labels),
                                   worker.context_for(step, 0))
        assert (out.synthetic_logits is not None) == synthesis
        loss = out.loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().repeat(worker.WORLD))  # every rank computes the global batch's loss
    torch.testing.assert_close(result["losses"], torch.stack(losses), rtol=1e-10, atol=1e-10)
    for name, value in method.state_dict().items():
        torch.testing.assert_close(result["state"][name], value, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.slow
def test_supcon_pretrains_end_to_end_and_its_knn_is_recomputed(tmp_path):
    from tiny_runs import TINY, assert_knn_recomputed

    from synco.engine.metrics import read_metrics
    from synco.pipelines.pretrain import pretrain

    settings = [s for s in TINY if not s.startswith("method.")]  # the tiny MoCo settings minus its method block
    cfg = load_config(None, settings + ["method.name=supcon", "method.temperature=0.1", "train.epochs=1",
                                        f"run_dir={tmp_path}", f"data.cache_dir={tmp_path}/cache"])
    record = pretrain(cfg)
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert record["finished"] and len(losses) == 1 and math.isfinite(losses[0])
    assert_knn_recomputed(record, tmp_path, test_size=128)


@pytest.mark.parametrize("name", ["supcon", "hscl"])
def test_queue_negatives_use_batch_keys_and_the_label_aware_queue(name):
    from synco.functional.queue_supervised import hscl_queue_loss, supcon_queue_loss

    cfg = load_config(None, SMALL + [f"method.name={name}", "method.negatives_from=queue", "method.queue_size=16",
                                     "model.bn_splits=2"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    assert method.needs_labels and not method.negative_analyses
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    queue_before = method.queue.keys.clone()
    out = method.training_step(Batch(views=views, index=torch.arange(6), labels=LABELS),
                               StepContext(generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        query = method.encoder_q(views[0])
    contrast = torch.cat([out.key, queue_before])
    contrast_labels = torch.cat([LABELS, torch.full((16,), -1)])
    # The functions are tested against float64 loops (tests/functional/test_queue_supervised.py); this checks
    # the wiring: the contrast set is the batch's keys, then the queue as it was before the step.
    function = supcon_queue_loss if name == "supcon" else hscl_queue_loss
    expected = function(query, contrast, LABELS, contrast_labels, cfg.method.temperature)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-10)
    method.after_step(out, Batch(views=(), index=torch.arange(6), labels=LABELS))
    assert method.queue.labels[:6].tolist() == LABELS.tolist()
