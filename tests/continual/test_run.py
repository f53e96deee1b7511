"""synco continual on a tiny Fashion-MNIST stream: tasks train on their own classes, R is measured after each,
every task's checkpoint is kept, and resume continues at a task boundary."""

import json

import pytest
import torch
from tiny_runs import tiny

from synco.continual.run import run_continual
from synco.engine.checkpoint import load_checkpoint
from synco.engine.metrics import read_metrics

TASKS = ["continual.tasks=2", "continual.task_classes=[[0,1,2,3,4],[5,6,7,8,9]]", "train.epochs=1",
         "data.subset=512", "method.queue_size=128", "eval.analysis_every=null"]


@pytest.mark.slow
def test_two_tasks_then_resume_with_a_changed_split_is_refused(tmp_path):
    cfg = tiny(tmp_path, *TASKS)
    record = run_continual(cfg)
    matrix = record["continual/R_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert record["continual/average_accuracy"] == pytest.approx(sum(matrix[1]) / 2)
    assert record["continual/forgetting"] == [matrix[0][0] - matrix[1][0]]
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
    """Two epochs per task, stopped after each epoch (train.stop_after=1) and resumed: the same R and weights."""
    straight = run_continual(tiny(tmp_path / "straight", *TASKS, "train.epochs=2"))
    sliced_cfg = tiny(tmp_path / "sliced", *TASKS, "train.epochs=2", "train.stop_after=1")
    stops = 0
    record = run_continual(sliced_cfg)
    while not record["finished"]:
        stops += 1
        record = run_continual(sliced_cfg, resume=True)
    assert stops == 2  # after the first epoch of task 0, and of task 1 (each resume finishes a task, starts the next)
    assert record["continual/R_matrix"] == straight["continual/R_matrix"]
    a = load_checkpoint(tmp_path / "straight" / "task_1" / "checkpoints" / "last.ckpt")["model"]
    b = load_checkpoint(tmp_path / "sliced" / "task_1" / "checkpoints" / "last.ckpt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = (tmp_path / "sliced" / "task_1" / "config.yaml").read_text()
    assert str(tmp_path / "sliced" / "task_0" / "checkpoints" / "last.ckpt") in config  # task 1 starts from task 0
