"""SimSiam, Barlow Twins, VICReg and SwAV as methods: each step's loss is its ``synco.functional`` loss of its
own outputs, SwAV's training details (frozen then re-normalised prototypes, the queue) do what the authors'
code does, and two processes train exactly as one on the concatenated batch."""

import math

import joint_embedding_ddp_worker as worker
import pytest
import torch
import torch.nn.functional as F
from two_processes import run_worker

from synco.compose import build_method
from synco.config import ConfigError, load_config
from synco.data.batch import Batch
from synco.functional import barlow_twins_loss, simsiam_loss, swav_loss, vicreg_loss
from synco.methods import StepContext

SMALL = ["model.backbone=small_cnn", "model.embedding_dim=16", "model.bn_splits=1", "train.batch_size=6"]


def step(name, *extra, epoch=0):
    cfg = load_config(None, SMALL + [f"method.name={name}", *extra])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    batch = Batch(views=views, index=torch.arange(6))
    out = method.training_step(batch, StepContext(epoch=epoch))
    return method, out, batch


def test_simsiam_step_is_its_loss_of_unnormalised_projections_and_predictions():
    method, out, batch = step("simsiam", "method.projector_hidden=32", "method.predictor_hidden=8")
    assert out.loss.item() == pytest.approx(simsiam_loss(out.p1, out.p2, out.z1, out.z2).item(), rel=1e-12)
    assert out.z1.norm(dim=1).sub(1).abs().max() > 1e-3  # raw projections
    assert isinstance(method.encoder.head[-1], torch.nn.BatchNorm1d) and not method.encoder.head[-1].affine
    assert len([m for m in method.encoder.head if isinstance(m, torch.nn.Linear)]) == 3


@pytest.mark.parametrize("name, loss", [("barlow_twins", lambda a, b: barlow_twins_loss(a, b, 0.0051)),
                                        ("vicreg", vicreg_loss)])
def test_joint_embedding_step_is_its_loss(name, loss):
    method, out, _ = step(name, "method.projector_hidden=32")
    assert out.loss.item() == pytest.approx(loss(out.z1, out.z2).item(), rel=1e-12)
    assert out.z1.shape == (6, 16) and out.z1.norm(dim=1).sub(1).abs().max() > 1e-3


def test_swav_step_scores_are_embeddings_against_unit_prototypes():
    method, out, batch = step("swav", "method.num_prototypes=7", "method.projector_hidden=32")
    weight = method.prototypes.weight
    torch.testing.assert_close(weight.norm(dim=1), torch.ones(7, dtype=torch.float64))
    with torch.no_grad():  # the two same-size crops go through the encoder as one batch (one batch-norm batch)
        z = method.encoder(torch.cat(batch.views)).view(2, 6, -1)
    torch.testing.assert_close(out.scores.detach(), z @ weight.detach().t())
    assert out.loss.item() == pytest.approx(swav_loss(out.scores).item(), rel=1e-12)


def test_swav_multi_crop_groups_views_by_size_and_predicts_the_global_codes_from_every_crop():
    cfg = load_config(None, SMALL + ["method.name=swav", "method.num_prototypes=5", "method.projector_hidden=32",
                                     "data.image_size=12", "data.views=[{count: 2}, {count: 3, size: 6}]"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(4)
    views = (*(torch.randn(6, 3, 12, 12, generator=g, dtype=torch.float64) for _ in range(2)),
             *(torch.randn(6, 3, 6, 6, generator=g, dtype=torch.float64) for _ in range(3)))
    out = method.training_step(Batch(views=views, index=torch.arange(6)), StepContext())
    assert out.scores.shape == (5, 6, 5)
    with torch.no_grad():
        z = torch.cat([method.encoder(torch.cat(views[:2])), method.encoder(torch.cat(views[2:]))]).view(5, 6, -1)
    torch.testing.assert_close(out.scores.detach(), z @ method.prototypes.weight.detach().t())
    assert out.loss.item() == pytest.approx(swav_loss(out.scores, (0, 1)).item(), rel=1e-12)


def test_swav_prototypes_are_frozen_then_trained_and_renormalised():
    cfg = load_config(None, SMALL + ["method.name=swav", "method.num_prototypes=7", "method.projector_hidden=32",
                                     "method.freeze_prototypes_steps=1"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.5)
    g = torch.Generator().manual_seed(1)
    batch = Batch(views=tuple(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2)),
                  index=torch.arange(6))
    before = method.prototypes.weight.detach().clone()
    for frozen in (True, False):
        out = method.training_step(batch, StepContext())
        optimizer.zero_grad()
        out.loss.backward()
        grad = method.prototypes.weight.grad
        assert (grad.abs().max() == 0) == frozen
        optimizer.step()
        method.after_step(out, batch)
        torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(7, dtype=torch.float64))
        moved = (method.prototypes.weight - before).abs().max().item()
        assert moved < 1e-6 if frozen else moved > 1e-3  # frozen: only float32 -> float64 re-normalisation
    assert int(method.steps_done) == 2


def test_swav_queue_fills_from_its_epoch_and_joins_sinkhorn_once_full():
    cfg = load_config(None, SMALL + ["method.name=swav", "method.num_prototypes=5", "method.projector_hidden=32",
                                     "method.queue_size=9", "method.queue_start_epoch=1"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(2)
    batches = [Batch(views=tuple(torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2)),
                     index=torch.arange(6)) for _ in range(3)]
    with torch.no_grad():
        out = method.training_step(batches[0], StepContext(epoch=0))
        method.after_step(out, batches[0])
        assert int(method.queue_rows) == 0 and out.assigned_embeddings is None
        for b in batches[:2]:
            out = method.training_step(b, StepContext(epoch=1))
            assert out.loss.item() == pytest.approx(swav_loss(out.scores).item(), rel=1e-12)  # not full
            method.after_step(out, b)
        assert int(method.queue_rows) == 9
        newest = method.encoder(torch.cat(batches[1].views)).view(2, 6, -1)  # (2, 6, D): the last enqueued
        torch.testing.assert_close(method.queue[:, :6], newest)
        out = method.training_step(batches[2], StepContext(epoch=1))
        queued = method.queue @ method.prototypes.weight.t()
        assert out.loss.item() == pytest.approx(swav_loss(out.scores, queue_scores=queued).item(), rel=1e-12)
        assert out.loss.item() != pytest.approx(swav_loss(out.scores).item(), rel=1e-9)


def test_settings_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="data.views gives 3 views.*simclr.*exactly 2"):
        load_config(None, ["method.name=simclr", "data.views=[{count: 3}]"])
    with pytest.raises(ConfigError, match=r"data.views\[1\]: crop scales"):
        load_config(None, ["method.name=swav", "data.views=[{count: 2}, {count: 2, crop_min_scale: 0.5, crop_max_scale: 0.2}]"])
    with pytest.raises(ConfigError, match="crops_for_assign.*among the 2 views"):
        load_config(None, ["method.name=swav", "method.crops_for_assign=[0,2]"])
    with pytest.raises(ConfigError, match="crops_for_assign"):
        load_config(None, ["method.name=swav", "method.crops_for_assign=[0,0]"])
    with pytest.raises(ConfigError, match="projector_layers"):
        load_config(None, ["method.name=vicreg", "method.projector_layers=0"])
    with pytest.raises(ConfigError, match="num_prototypes"):
        load_config(None, ["method.name=swav", "method.num_prototypes=1"])


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    result = run_worker(worker.__file__, tmp_path / "joint_embedding_ddp.pt")
    for name, build in worker.BUILDERS.items():
        method = build()
        optimizer = worker.optimizer_for(method)
        losses = []
        for step, (view_1, view_2, index) in enumerate(worker.batches()):
            batch = Batch(views=(view_1, view_2), index=index)
            out = method.training_step(batch, worker.context(step))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            method.after_step(out, batch)
            losses.append(out.loss.detach().repeat(worker.WORLD))  # every rank evaluates the global batch
        assert all(math.isfinite(v) for v in torch.stack(losses).flatten().tolist())
        torch.testing.assert_close(result[name]["losses"], torch.stack(losses), rtol=1e-10, atol=1e-10, msg=name)
        for key, value in method.state_dict().items():
            torch.testing.assert_close(result[name]["state"][key], value, rtol=1e-10, atol=1e-10, msg=f"{name} {key}")
