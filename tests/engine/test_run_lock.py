"""One writer per run directory: a live holder refuses a second writer by name, a dead one's lock is taken over."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import tiny

from synco.engine.run_lock import LOCK_NAME, RunLock, RunLockedError
from synco.pipelines.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from synco.engine.run_lock import RunLock
lock = RunLock(sys.argv[1]); lock.acquire(); print("held", flush=True); time.sleep(float(sys.argv[2]))
"""


def holder(run_dir, seconds=60.0):
    """A process that takes the lock of ``run_dir`` and keeps it for ``seconds``; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(seconds)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_naming_the_live_holder(tmp_path):
    process = holder(tmp_path / "run")
    try:
        with pytest.raises(RunLockedError) as caught:
            RunLock(tmp_path / "run").acquire()
        message = str(caught.value)
        assert f"process {process.pid}" in message and "on host" in message and "started" in message
        assert "\n" not in message
    finally:
        process.kill()
        process.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_one_line(tmp_path, caplog):
    process = holder(tmp_path / "run")
    process.kill()  # SIGKILL: no cleanup, the lock file and its contents stay
    process.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()
    lock = RunLock(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="synco"):
        lock.acquire()
    taken = [r.getMessage() for r in caplog.records if "taking over the lock" in r.getMessage()]
    assert len(taken) == 1 and f"process {process.pid}" in taken[0] and "no longer running" in taken[0]
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_one_process_cannot_hold_one_run_twice_and_release_frees_it(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    second = RunLock(tmp_path)
    second.acquire()
    second.release()


@pytest.mark.parametrize("resume", [False, True])
def test_pretrain_into_a_run_being_written_is_refused_before_touching_it(tmp_path, resume):
    """Also with --resume, and never with the misleading 'stopped before its first checkpoint' message."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "step": 1, "train/loss_step": 7.0}\n')  # a live first epoch
    process = holder(run)
    try:
        with pytest.raises(RunLockedError, match="is being written by") as caught:
            pretrain(tiny(run, "train.epochs=1"), resume=resume)
        assert "first checkpoint" not in str(caught.value)
        assert (run / "metrics.jsonl").read_text().count("\n") == 1
    finally:
        process.kill()
        process.wait()


def test_resume_of_an_empty_run_directory_starts_the_run(tmp_path):
    """One job script for the first start and every requeued restart: --resume with nothing to resume trains."""
    record = pretrain(tiny(tmp_path / "new", "train.epochs=1", "eval.baselines=false"), resume=True)
    assert record["finished"] and record["epoch"] == 1
    assert not (tmp_path / "new" / LOCK_NAME).exists()

