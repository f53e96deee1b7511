"""SimCLR on the method contract: built from a recipe, trained by the shared loop, 2 processes = 1."""

import math
from pathlib import Path

import pytest
import simclr_ddp_worker as worker
import torch
from reference import nt_xent_reference
from two_processes import run_worker

from synco.compose import build_method
from synco.config import load_config
from synco.data.batch import Batch
from synco.methods import SimCLR, StepContext

ROOT = Path(__file__).resolve().parents[2]


def test_recipe_builds_simclr_with_the_mlp_head_and_temperature_half():
    cfg = load_config(str(ROOT / "configs/pretrain/cifar10/simclr.yaml"))
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0)
    assert isinstance(method, SimCLR)
    assert cfg.method.temperature == 0.5 and method.criterion.temperature == 0.5
    assert isinstance(method.encoder.head, torch.nn.Sequential)  # MoCo-v2's 2-layer MLP head
    trainable = {id(p) for p in method.trainable_parameters()}
    assert trainable == {id(p) for p in method.parameters()}  # no momentum copy, no queue


def test_training_step_is_nt_xent_of_the_two_views():
    cfg = load_config(None, ["method.name=simclr", "model.backbone=small_cnn", "model.embedding_dim=16",
                             "model.bn_splits=1", "train.batch_size=4"])
    method = build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()
    g = torch.Generator().manual_seed(0)
    views = (torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
             torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64))
    out = method.training_step(Batch(views=views, index=torch.arange(4)), StepContext())
    with torch.no_grad():
        z1, z2 = method.encoder(views[0]), method.encoder(views[1])
    assert abs(out.loss.item() - nt_xent_reference(z1, z2, 0.5)) < 1e-12
    out.loss.backward()
    assert all(p.grad is not None for p in method.trainable_parameters())


def single_process_reference():
    """What the two ranks compute together, in one process: NT-Xent over the whole global batch."""
    from synco.functional import nt_xent_loss_local

    method = worker.build()
    optimizer = worker.optimizer_for(method)
    local = worker.GLOBAL_BATCH // worker.WORLD
    generators = [torch.Generator().manual_seed(100 + r) for r in range(worker.WORLD)]  # each rank's draws
    losses = []
    for view_1, view_2, _ in worker.batches():
        z1, z2 = method.encoder(view_1), method.encoder(view_2)
        halves = []
        for r in range(worker.WORLD):
            mine = slice(r * local, (r + 1) * local)
            synthetic = None
            if method.negatives is not None:
                synthetic = method.in_batch_synthetic_logits(z1[mine], z2[mine], z1, z2, r * local, generators[r])
            halves.append(nt_xent_loss_local(z1[mine], z2[mine], z1, z2, r * local, 0.5, synthetic))
        optimizer.zero_grad()
        (sum(halves) / len(halves)).backward()  # DDP averages the ranks' gradients
        optimizer.step()
        losses.append(torch.stack([h.detach() for h in halves]))
    return torch.stack(losses), method.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("synthesis", [False, True], ids=["plain", "with_synthesis"])
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path, monkeypatch, synthesis):
    """Gathering with gradients: two gloo processes train exactly as one process on the whole batch (with
    synthesis: each rank's anchors draw their synthetic negatives from the global batch with the rank's stream)."""
    monkeypatch.setenv("SYNCO_TEST_SYNTHESIS", "1" if synthesis else "0")
    out = tmp_path / "simclr_ddp.pt"
    result = run_worker(worker.__file__, out)
    losses, state = single_process_reference()
    torch.testing.assert_close(result["losses"], losses, rtol=1e-10, atol=1e-10)
    for name, value in state.items():
        torch.testing.assert_close(result["state"][name], value, rtol=1e-10, atol=1e-10, msg=name)
    # The reference itself is the whole-batch NT-Xent: the mean of the halves equals it at step 0.
    method = worker.build()
    view_1, view_2, _ = next(worker.batches())
    with torch.no_grad():
        z1, z2 = method.encoder(view_1), method.encoder(view_2)
    if not synthesis:
        assert abs(losses[0].mean().item() - nt_xent_reference(z1, z2, 0.5)) < 1e-12
    else:  # the synthetic negatives add to every denominator
        assert losses[0].mean().item() > nt_xent_reference(z1, z2, 0.5)
    assert not torch.equal(state["encoder.head.weight"], worker.build().state_dict()["encoder.head.weight"])


def test_imagenet_recipe_has_simclrs_large_batch_settings():
    cfg = load_config(str(ROOT / "configs/pretrain/imagenet/simclr_100ep.yaml"))
    assert cfg.method.name == "simclr" and cfg.method.temperature == 0.1
    assert cfg.train.optimizer == "lars" and cfg.train.lr == pytest.approx(0.3 * cfg.train.batch_size / 256)
    assert cfg.train.exclude_bias_and_norm and cfg.train.lr_warmup_epochs == 10 and cfg.model.sync_batchnorm


@pytest.mark.slow
def test_simclr_pretrains_with_lars_warmup_and_excluded_norms(tmp_path):
    from synco.engine.metrics import read_metrics
    from synco.pipelines.pretrain import pretrain

    cfg = load_config(None, [
        "method.name=simclr", "data.dataset=fashion_mnist", "data.image_size=28", "data.subset=256",
        "model.backbone=small_cnn", "train.batch_size=64", "train.epochs=2", "train.optimizer=lars",
        "train.lr=0.5", "train.exclude_bias_and_norm=true", "train.lr_warmup_epochs=1", "train.progress=false",
        "eval.train_subset=256", "eval.test_subset=128", "eval.knn_k=20", f"run_dir={tmp_path}",
        f"data.cache_dir={tmp_path}/cache",
    ])
    record = pretrain(cfg)
    epochs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert [r["train/lr"] for r in epochs] == [0.5, 0.5]  # warm-up epoch 1 of 1 reaches lr, then cosine from lr
    assert record["finished"] and all(math.isfinite(r["train/loss"]) for r in epochs)
