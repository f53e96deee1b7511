"""synco continual on a tiny Fashion-MNIST stream: tasks train on their own classes, R is measured after each,
every task's checkpoint is kept, and resume continues at a task boundary."""

import json

import pytest
import torch
from tiny_runs import tiny

from synco.engine.checkpoint import load_checkpoint
from synco.engine.metrics import read_metrics
from synco.pipelines.continual import run_continual

TASKS = ["continual.tasks=2", "continual.task_classes=[[0,1,2,3,4],[5,6,7,8,9]]", "train.epochs=1",
         "data.subset=512", "method.queue_size=128", "eval.analysis_every=null"]


@pytest.mark.slow
def test_two_tasks_then_resume_with_a_changed_split_is_refused(tmp_path):
    cfg = tiny(tmp_path, *TASKS, "continual.linear_epochs=2")
    record = run_continual(cfg)
    matrix = record["continual/R_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert record["continual/average_accuracy"] == pytest.approx(sum(matrix[1]) / 2)
    assert record["continual/forgetting"] == [matrix[0][0] - matrix[1][0]]
    linear = record["continual/R_linear_matrix"]  # the same matrix by linear probes, and the all-class probe
    assert len(linear) == 2 and len(linear[1]) == 2
    # R_linear[1][1] again, by hand: task 1's encoder, a probe on classes 5-9 renumbered 0-4.
    from synco.data.loaders import channel_stats
    from synco.engine.inputs import load_labelled_splits
    from synco.eval.features import extract_features
    from synco.eval.linear import train_linear_on_features
    from synco.compose import build_method

    state = load_checkpoint(tmp_path / "task_1" / "checkpoints" / "last.ckpt")
    labelled, test = load_labelled_splits(cfg)
    bank, test = labelled.head(256), test.head(128)
    method = build_method(cfg, 1, 512, 0)
    method.load_state_dict(state["model"])
    mean, std = state["normalisation"]["mean"], state["normalisation"]["std"]
    assert (mean, std) != tuple(channel_stats(labelled.images[:512]))  # task 1 normalised with its own images
    features = [extract_features(method.backbone, d.images, mean, std) for d in (bank, test)]
    keep = [d.labels >= 5 for d in (bank, test)]
    by_hand = train_linear_on_features(features[0][keep[0]], bank.labels[keep[0]] - 5, features[1][keep[1]],
                                       test.labels[keep[1]] - 5, 5, epochs=2, batch_size=256, lr=30.0)
    assert linear[1][1] == by_hand["top1"]
    assert record["continual/linear_average_accuracy"] == pytest.approx(sum(linear[1]) / 2)
    assert 0 <= record["continual/linear_all_classes"] <= 100
    split = json.loads((tmp_path / "tasks.json").read_text())
    assert split["classes"] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    # Each task trained on its own images only: the task files hold the indices of its classes.
    from synco.engine.inputs import load_labelled_splits

    labels = load_labelled_splits(cfg)[0].labels[:512]
    for t, classes in enumerate(split["classes"]):
        rows = [int(x) for x in (tmp_path / "tasks" / f"task_{t}.txt").read_text().split()]
        assert {int(labels[i]) for i in rows} == set(classes) and len(rows) == split["sizes"][t]
        assert load_checkpoint(tmp_path / f"task_{t}" / "checkpoints" / "last.ckpt")["epoch"] == 1
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["task"] for r in records if "continual/R" in r] == [0, 1]
    assert {r["task"] for r in records if "train/loss" in r} == {0, 1}
    # Resume of a finished stream reads the rows back; a different split is refused before any work.
    again = run_continual(cfg, resume=True)
    assert again["continual/R_matrix"] == matrix
    with pytest.raises(ValueError, match="already holds a continual run"):
        run_continual(cfg)
    with pytest.raises(ValueError, match="another task split"):
        run_continual(tiny(tmp_path, *TASKS, "continual.task_classes=[[0,1,2,3],[4,5,6,7,8,9]]"), resume=True)


@pytest.mark.slow
def test_resume_inside_a_task_gives_the_same_stream(tmp_path):
    """Two epochs per task, stopped after each epoch (train.stop_after=1, counted across tasks) and resumed: the
    same R and weights."""
    straight = run_continual(tiny(tmp_path / "straight", *TASKS, "train.epochs=2"))
    sliced_cfg = tiny(tmp_path / "sliced", *TASKS, "train.epochs=2", "train.stop_after=1")
    stops = 0
    record = run_continual(sliced_cfg)
    while not record["finished"]:
        stops += 1
        record = run_continual(sliced_cfg, resume=True)
    assert stops == 3  # inside task 0, at the boundary after it, inside task 1
    assert record["continual/R_matrix"] == straight["continual/R_matrix"]
    a = load_checkpoint(tmp_path / "straight" / "task_1" / "checkpoints" / "last.ckpt")["model"]
    b = load_checkpoint(tmp_path / "sliced" / "task_1" / "checkpoints" / "last.ckpt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = (tmp_path / "sliced" / "task_1" / "config.yaml").read_text()
    assert str(tmp_path / "sliced" / "task_0" / "checkpoints" / "last.ckpt") in config  # task 1 starts from task 0


def test_the_command_refuses_more_tasks_than_classes_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "synco.cli", "continual", "configs/pretrain/fashion_mnist/moco_v2.yaml",
                           f"run_dir={tmp_path}/run", "continual.tasks=11", f"data.cache_dir={tmp_path}/cache"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "synco: error: continual.tasks=11 is more than the 10 classes: a task would be empty"]
    assert not (tmp_path / "run").exists()  # nothing written
