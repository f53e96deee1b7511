"""Stop signals: training ends after the current step with a checkpoint that resumes exactly, mid-epoch too."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY, tiny

from synco.config import load_config
from synco.engine import fit as fit_module
from synco.engine.checkpoint import load_checkpoint
from synco.engine.stop_signals import STOP, TrainingStopped
from synco.pipelines.pretrain import checkpoint_path, pretrain

ROOT = Path(__file__).resolve().parents[2]
TINY_RECIPE = "configs/pretrain/fashion_mnist/synco.yaml"


def assert_same_run(a: Path, b: Path) -> None:
    """Weights, queues, optimizer state, every rank's random streams, and the epochs' mean losses and learning
    rates are identical."""
    x, y = load_checkpoint(checkpoint_path(a)), load_checkpoint(checkpoint_path(b))
    assert x["epoch"] == y["epoch"] and x["global_step"] == y["global_step"] and "mid_epoch" not in y
    for name, value in x["model"].items():
        torch.testing.assert_close(y["model"][name], value, rtol=0, atol=0, msg=name)
    for i, state in x["optimizer"]["state"].items():
        torch.testing.assert_close(y["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"], rtol=0,
                                   atol=0)
    assert len(x["rng"]["per_rank"]) == len(y["rng"]["per_rank"])
    for mine, theirs in zip(x["rng"]["per_rank"], y["rng"]["per_rank"]):  # every rank's streams
        assert mine.keys() == theirs.keys()
        for stream in mine:
            assert torch.equal(mine[stream], theirs[stream]), stream
    assert torch.equal(x["rng"]["data"], y["rng"]["data"]) and torch.equal(x["rng"]["shuffle"], y["rng"]["shuffle"])

    def epoch_losses(run):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["epoch"], r["train/loss"], r["train/lr"]) for r in records if "train/loss" in r]

    assert epoch_losses(a) == epoch_losses(b)


def stop_at(monkeypatch, stop_step: int, signum=signal.SIGTERM):
    """Make the loop receive ``signum`` during global step ``stop_step`` (1-based), as a signal handler would."""
    real = fit_module.train_step
    count = {"steps": 0}

    def step(*args, **kwargs):
        count["steps"] += 1
        if count["steps"] == stop_step:
            STOP.received = signum
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train_step", step)


@pytest.mark.parametrize("augment_on", ["batch", "sample"])
def test_a_stop_mid_epoch_resumes_to_the_straight_runs_weights(tmp_path, monkeypatch, augment_on):
    """4 steps per epoch, 2 epochs (synthesis from epoch 2); stopped after step 6 (epoch 2, step 2)."""
    settings = ("train.epochs=2", f"data.augment_on={augment_on}", "data.num_workers=0", "eval.baselines=false")
    straight = tmp_path / "straight"
    pretrain(tiny(straight, *settings))
    stopped = tmp_path / "stopped"
    stop_at(monkeypatch, 6)
    try:
        with pytest.raises(TrainingStopped) as caught:
            pretrain(tiny(stopped, *settings))
    finally:
        STOP.received = None
    assert (caught.value.epoch, caught.value.epoch_step, caught.value.exit_code) == (1, 2, 143)
    state = load_checkpoint(checkpoint_path(stopped))
    assert state["epoch"] == 1 and state["global_step"] == 6 and state["mid_epoch"]["epoch_step"] == 2
    monkeypatch.undo()
    pretrain(tiny(stopped, *settings), resume=True)
    assert_same_run(straight, stopped)


def test_a_stop_at_an_epochs_last_step_writes_that_epochs_checkpoint(tmp_path, monkeypatch):
    stop_at(monkeypatch, 4)
    try:
        with pytest.raises(TrainingStopped) as caught:
            pretrain(tiny(tmp_path, "train.epochs=2", "eval.baselines=false"))
    finally:
        STOP.received = None
    assert (caught.value.epoch, caught.value.epoch_step) == (1, 0)
    state = load_checkpoint(checkpoint_path(tmp_path))
    assert state["epoch"] == 1 and "mid_epoch" not in state


@pytest.mark.slow
def test_sigterm_to_a_real_process_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    settings = [*TINY, "data.subset=2048", "train.epochs=1", "train.log_every=1", "eval.baselines=false",
                f"data.cache_dir={tmp_path}/cache"]
    straight = tmp_path / "straight"
    pretrain(load_config(ROOT / TINY_RECIPE, [*settings, f"run_dir={straight}"]))
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "synco.cli", "pretrain", TINY_RECIPE, *settings, f"run_dir={run}"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = run / "metrics.jsonl", time.time() + 240
    while time.time() < deadline and process.poll() is None:  # wait for step 3 of 32
        if metrics.exists() and metrics.read_text().count('"train/loss_step"') >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("synco: stopped")]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert "SIGTERM" in lines[0] and str(checkpoint_path(run)) in lines[0] and "--resume" in lines[0]
    assert "mid_epoch" in load_checkpoint(checkpoint_path(run))  # stopped inside epoch 1, as intended
    resumed = subprocess.run([*argv, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(straight, run)


def test_a_stopped_slurm_job_is_requeued_when_asked(tmp_path, monkeypatch, capsys):
    """trainer.requeue=true: after the checkpoint, rank 0 runs `scontrol requeue <job>` (a stand-in records it)."""
    from synco.commands.common import run_training

    calls = tmp_path / "calls"
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")

    def stopped():
        raise TrainingStopped(signal.SIGUSR1, tmp_path / "last.ckpt", 2, 5)

    _, code = run_training(stopped, lambda: "continue with: synco pretrain x --resume", requeue=True)
    assert code == 128 + signal.SIGUSR1
    assert calls.read_text().split() == ["requeue", "4242"]
    err = capsys.readouterr().err
    assert "stopped by SIGUSR1 at epoch 3, step 5" in err and "SLURM job 4242 was requeued" in err
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    run_training(stopped, lambda: "", requeue=True)
    assert calls.read_text().split()[-1] == "77_3"
    _, code = run_training(stopped, lambda: "", requeue=False)
    assert code == 128 + signal.SIGUSR1 and len(calls.read_text().splitlines()) == 2
