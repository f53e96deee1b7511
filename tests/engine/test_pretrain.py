"""End-to-end runs on small subsets of real data (Fashion-MNIST from Debian, CIFAR-10 JPEG copy)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synco.config import load_config
from synco.engine.checkpoint import CheckpointError, load_checkpoint
from synco.engine.metrics import read_metrics
from synco.pipelines.pretrain import NonFiniteLossError, checkpoint_path, pretrain

pytestmark = pytest.mark.slow

from tiny_runs import assert_knn_recomputed, tiny


def test_resume_gives_identical_weights(tmp_path):
    """2 epochs straight == 1 epoch, stop, --resume, 1 epoch (synthesis starts in epoch 2)."""
    straight = pretrain(tiny(tmp_path / "a", "train.epochs=2"))
    first = pretrain(tiny(tmp_path / "b", "train.epochs=2", "train.stop_after=1"))
    assert not first["finished"]
    resumed = pretrain(tiny(tmp_path / "b", "train.epochs=2"), resume=True)
    a, b = load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(checkpoint_path(tmp_path / "b"))
    assert a["epoch"] == b["epoch"] == 2
    for part in ("model",):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), key
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
    assert straight["eval/knn_top1"] == resumed["eval/knn_top1"]

    def losses(run):
        return [(r["epoch"], r["step"], r.get("train/loss_step"), r.get("train/loss"))
                for r in read_metrics(tmp_path / run / "metrics.jsonl") if "step" in r]

    assert losses("a") == losses("b")


def test_resume_after_a_crash_drops_records_logged_past_the_checkpoint(tmp_path):
    pretrain(tiny(tmp_path, "train.epochs=2", "train.stop_after=1"))
    with open(tmp_path / "metrics.jsonl", "a") as f:  # what a crash in epoch 2 leaves behind
        f.write(json.dumps({"epoch": 2, "step": 5, "train/loss_step": 1.0}) + "\n")
    pretrain(tiny(tmp_path, "train.epochs=2"), resume=True)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert not any(r.get("train/loss_step") == 1.0 for r in records)
    assert [r["epoch"] for r in records if "train/loss" in r] == [1, 2]


def test_checkpoint_loads_weights_only_and_holds_the_queue(tiny_runs):
    path = checkpoint_path(tiny_runs("train.epochs=1", "eval.baselines=false"))
    state = torch.load(path, weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "global_step", "rng", "config"} <= set(state)
    assert state["model"]["queue.keys"].shape == (128, 128)
    assert state["model"]["queue.pointer"].item() == (4 * 64) % 128
    assert not list(path.parent.glob("*.tmp"))


def test_corrupt_and_foreign_checkpoints_get_clear_errors(tmp_path):
    path = checkpoint_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        pretrain(tiny(tmp_path, "train.epochs=1"), resume=True)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a SynCo checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    pretrain(tiny(tmp_path, "train.epochs=3", "train.stop_after=1"))
    good = checkpoint_path(tmp_path).read_bytes()
    from synco import losses

    real = losses.info_nce_loss
    monkeypatch.setattr(losses, "info_nce_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="nan"):
        pretrain(tiny(tmp_path, "train.epochs=3"), resume=True)
    assert checkpoint_path(tmp_path).read_bytes() == good


def test_knn_monitor_logs_every_nth_epoch_and_keeps_resume_exact(tmp_path):
    pretrain(tiny(tmp_path / "a", "train.epochs=3", "eval.every_epochs=1"))
    pretrain(tiny(tmp_path / "b", "train.epochs=3"))
    evals = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "eval/knn_top1" in r]
    assert [r["epoch"] for r in evals] == [1, 2, 3]
    a, b = load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(checkpoint_path(tmp_path / "b"))
    for key in a["model"]:  # evaluation must not touch the training state (BN statistics, RNG)
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_zero_epochs_evaluates_the_untrained_encoder(tmp_path):
    record = pretrain(tiny(tmp_path, "train.epochs=0"))
    assert record["finished"]
    assert_knn_recomputed(record, tmp_path, test_size=128)
    # The untrained encoder is kept as the checkpoint of epoch 0, so every protocol can evaluate it.
    from synco.eval.protocols.knn import run_knn

    assert load_checkpoint(checkpoint_path(tmp_path))["epoch"] == 0
    assert run_knn(tmp_path)["eval/knn_top1"] == record["eval/knn_top1"]


def test_cli_run_on_cifar10_writes_its_files(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    args = [sys.executable, "-m", "synco.cli", "pretrain", str(repo / "configs/pretrain/cifar10/synco.yaml"),
            f"run_dir={tmp_path}/run", "data.cache_dir=data/cache", "data.subset=512", "train.epochs=2",
            "method.negatives.warmup_epochs=1", "eval.train_subset=1000", "eval.test_subset=500",
            "train.progress=false"]
    done = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "trained encoder" in done.stdout and "raw pixels" in done.stdout
    run = tmp_path / "run"
    assert load_config(run / "config.yaml").data.subset == 512
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "train/loss" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["train/synthetic"] for r in epochs] == [False, True]
    final = records[-1]
    assert final["finished"] and final["eval/knn_k"] == 200
    assert_knn_recomputed(final, run, test_size=500)
    assert "eval/knn_top1_untrained" in records[0] and "eval/knn_top1_raw_pixels" in records[0]
    assert load_checkpoint(run / "checkpoints/last.ckpt")["epoch"] == 2


def test_cli_rejects_bad_config_before_work(tmp_path):
    done = subprocess.run([sys.executable, "-m", "synco.cli", "pretrain", "configs/pretrain/cifar10/synco.yaml",
                           f"run_dir={tmp_path}/x", "method.name=simclr"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "method.name" in done.stderr
    assert not (tmp_path / "x").exists()


def test_missing_dataset_error_names_both_sources(tmp_path, monkeypatch):
    from synco.data import datasets

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(datasets.DatasetNotFoundError, match="dataset-fashion-mnist.*FashionMNIST/raw"):
        datasets.load_fashion_mnist(str(tmp_path), train=True)


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    pretrain(tiny(tmp_path, "train.epochs=1"))
    before = checkpoint_path(tmp_path).read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        pretrain(tiny(tmp_path, "train.epochs=1"))
    assert checkpoint_path(tmp_path).read_bytes() == before


def test_image_folder_with_per_image_augmentation(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("val", 4)):
        for cls in ("cats", "dogs"):
            folder = tmp_path / "images" / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (20, 24, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    cfg = load_config(None, [
        f"run_dir={tmp_path}/run", "data.dataset=image_folder", f"data.root={tmp_path}/images", "data.image_size=16",
        "data.augment_on=sample", "model.backbone=small_cnn", "model.bn_splits=2", "method.queue_size=16",
        "method.negatives.num_hard=4", "method.negatives.warmup_epochs=0", "train.batch_size=8", "train.epochs=1",
        "train.progress=false", "eval.knn_k=5",
    ])
    record = pretrain(cfg)
    assert record["finished"]
    assert_knn_recomputed(record, tmp_path / "run", test_size=8)
    assert load_checkpoint(checkpoint_path(tmp_path / "run"))["global_step"] == 3  # 24 images // 8


def test_image_size_mismatch_is_reported_before_training(tmp_path):
    with pytest.raises(ValueError, match="data.image_size=32"):
        pretrain(tiny(tmp_path, "data.image_size=32"))
    assert not checkpoint_path(tmp_path).exists()


def test_bf16_mixed_precision_trains_with_finite_losses_and_a_float32_head(tmp_path):
    full = pretrain(tiny(tmp_path / "fp32", "train.epochs=2", "eval.baselines=false"))
    mixed = pretrain(tiny(tmp_path / "bf16", "train.epochs=2", "eval.baselines=false", "trainer.precision=bf16-mixed"))
    losses = {name: [r["train/loss"] for r in read_metrics(tmp_path / name / "metrics.jsonl") if "train/loss" in r]
              for name in ("fp32", "bf16")}
    assert all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())
    assert losses["fp32"] != losses["bf16"]  # autocast really ran the encoders in bf16
    assert abs(losses["fp32"][-1] - losses["bf16"][-1]) < 0.5  # ... and training went the same way
    assert mixed["finished"] and full["finished"]
