"""Two gloo processes against one process that sees the concatenated batch.

With a batch-norm-free encoder the two must agree exactly (float64): each rank's loss, and after a few
steps the query and key encoders, the global queue and its pointer. This checks the gathering of keys
before the enqueue, the cross-rank key shuffle, the per-rank synthesis, same-image masking with
gathered indices and the averaging of gradients. A two-process ``synco pretrain`` run is checked too.
"""

import json
import subprocess
import sys
from pathlib import Path

import ddp_worker  # tests/ is on sys.path, as for reference.py
import pytest
import torch
from two_processes import run_worker

from synco.data.batch import Batch
from synco.methods import QueueOutput

pytestmark = pytest.mark.slow


def single_process_reference():
    """What the two ranks compute together, done by one process: loss = mean of the two halves' losses."""
    method = ddp_worker.build()
    optimizer = ddp_worker.optimizer_for(method)
    synthesis = [torch.Generator().manual_seed(100 + r) for r in range(ddp_worker.WORLD)]
    local = ddp_worker.GLOBAL_BATCH // ddp_worker.WORLD
    losses = []
    for step, (view_q, view_k, index) in enumerate(ddp_worker.batches()):
        query = method.encoder_q(view_q)
        key = method.encode_keys(view_k)  # no batch norm: shuffling cannot change the keys
        halves = [
            method.loss(query[r * local:(r + 1) * local], key[r * local:(r + 1) * local],
                        index[r * local:(r + 1) * local], step >= 1, synthesis[r]).loss
            for r in range(ddp_worker.WORLD)
        ]
        optimizer.zero_grad()
        (sum(halves) / len(halves)).backward()  # DDP averages the ranks' gradients
        optimizer.step()
        method.after_step(QueueOutput(loss=sum(halves), key=key.detach()), Batch(views=(view_q, view_k), index=index))
        losses.append(torch.stack([h.detach() for h in halves]))
    return torch.stack(losses), method.state_dict()


def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    result = run_worker(ddp_worker.__file__, out)
    losses, state = single_process_reference()
    torch.testing.assert_close(result["losses"], losses, rtol=1e-10, atol=1e-10)
    assert set(result["state"]) == set(state)
    for name, value in state.items():
        torch.testing.assert_close(result["state"][name], value, rtol=1e-10, atol=1e-10, msg=name)
    # The run did something: the keys of 3 global batches are in the queue, the weights moved.
    assert int(state["queue.pointer"]) == 3 * ddp_worker.GLOBAL_BATCH
    assert not torch.equal(state["encoder_q.head.weight"], ddp_worker.build().state_dict()["encoder_q.head.weight"])


def pretrain_cli(run_dir, cache, *extra, devices=2):
    from tiny_runs import TINY

    return subprocess.run(
        [sys.executable, "-m", "synco.cli", "pretrain", "configs/pretrain/fashion_mnist/synco.yaml", *TINY,
         f"run_dir={run_dir}", f"data.cache_dir={cache}", "trainer.accelerator=cpu", f"trainer.devices={devices}",
         *extra],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
    )


def test_two_compiled_processes_write_one_run_directory_and_resume_exactly(tmp_path):
    """Two gloo processes with trainer.compile=true (the eager step is the compiled one's reference in
    test_compile.py; the per-rank data path is the same): one run directory and report, and 2 epochs straight
    equal 1 epoch, stop, resume for the 2nd, in which synthesis starts, so the resumed half compiles the
    negatives path anew."""
    straight, sliced, cache = tmp_path / "straight", tmp_path / "sliced", tmp_path / "cache"
    out = pretrain_cli(straight, cache, "train.epochs=2", "trainer.compile=true")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch.compile (mode=default) for training" in out.stderr
    assert out.stdout.count("kNN on fashion_mnist") == 1  # one report, from rank 0
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines() if line]
    epochs = [r for r in records if "train/loss" in r]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(r["train/processes"] == 2 for r in epochs)
    assert sorted(p.name for p in straight.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl"]

    assert pretrain_cli(sliced, cache, "train.epochs=2", "train.stop_after=1", "trainer.compile=true").returncode == 0
    wrong = pretrain_cli(sliced, cache, "train.epochs=2", "--resume", devices=1)
    assert wrong.returncode == 2 and "written by 2 process(es)" in wrong.stderr
    resumed = pretrain_cli(sliced, cache, "train.epochs=2", "--resume", "trainer.compile=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from test_preemption import assert_same_run

    assert len(torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["rng"]["per_rank"]) == 2
    assert_same_run(straight, sliced)


def protocol_cli(command, run_dir, *extra, devices=2):
    return subprocess.run(
        [sys.executable, "-m", "synco.cli", command, str(run_dir), "trainer.accelerator=cpu",
         f"trainer.devices={devices}", *extra],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_runs):
    """A copy of the test run's shared tiny run, into which the protocol tests of this module write."""
    return tiny_runs("train.epochs=1", "eval.baselines=false", copy_to=tmp_path_factory.mktemp("protocols") / "run")


PROBE = ["linear.epochs=10", "linear.lr=0.5", "linear.batch_size=32"]


def test_linear_on_two_processes_equals_one_on_cached_features(trained_run, tmp_path):
    """One result, written by rank 0; on cached features the probe equals the single-process one (the gathered
    features are the same)."""
    from synco.engine.metrics import read_metrics

    one = protocol_cli("linear", trained_run, *PROBE, f"linear.out_dir={tmp_path / 'one'}", devices=1)
    two = protocol_cli("linear", trained_run, *PROBE, f"linear.out_dir={tmp_path / 'two'}")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("linear probe (") == 1
    a, b = read_metrics(tmp_path / "one" / "metrics.jsonl"), read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert len(b) == 2 and b[-1]["linear/processes"] == 2 and a[-1]["linear/processes"] == 1
    assert b[-1]["linear/top1_mean"] == pytest.approx(a[-1]["linear/top1_mean"], abs=0.8)  # at most 1 test image of 128


def test_knn_on_two_processes_equals_one(trained_run, tmp_path):
    from synco.engine.metrics import read_metrics

    knn_one = protocol_cli("knn", trained_run, devices=1)
    knn_two = protocol_cli("knn", trained_run)
    assert knn_one.returncode == 0 and knn_two.returncode == 0 and knn_two.stdout.count("kNN (k=") == 1, \
        knn_two.stderr[-2000:]
    knn = read_metrics(trained_run / "knn" / "metrics.jsonl")[-2:]
    assert [r["eval/processes"] for r in knn] == [1, 2]
    assert knn[1]["eval/knn_top1"] == pytest.approx(knn[0]["eval/knn_top1"], abs=0.8)


def test_augmented_linear_on_two_processes_and_an_indivisible_batch_refused(trained_run, tmp_path):
    from synco.engine.metrics import read_metrics

    augmented = protocol_cli("linear", trained_run, *PROBE, "linear.epochs=1", "linear.augment=true",
                             f"linear.out_dir={tmp_path / 'augmented'}")
    assert augmented.returncode == 0, augmented.stderr[-2000:]
    assert read_metrics(tmp_path / "augmented" / "metrics.jsonl")[-1]["linear/processes"] == 2
    odd = protocol_cli("linear", trained_run, "linear.augment=true", "linear.batch_size=33",
                       f"linear.out_dir={tmp_path / 'x'}")
    assert odd.returncode == 2 and "linear.batch_size=33" in odd.stderr and "multiple of the 2 processes" in odd.stderr


def test_finetune_on_two_processes(trained_run):
    from synco.engine.metrics import read_metrics

    finetune = protocol_cli("finetune", trained_run, "finetune.epochs=2", "finetune.batch_size=64", "finetune.lr=0.1",
                            "finetune.fraction=0.01",
                            f"data.cache_dir={trained_run / 'cache'}")  # its subset file beside this copy
    assert finetune.returncode == 0 and finetune.stdout.count("fine-tuned on") == 1, finetune.stderr[-2000:]
    summary = read_metrics(trained_run / "finetune_1pct" / "metrics.jsonl")[-1]
    assert summary["finetune/processes"] == 2 and summary["finetune/labelled_images"] == 600
    assert summary["finetune/top1_mean"] > 20  # 10 classes; 2 short epochs on 600 images


def test_a_rank_that_dies_ends_the_job_with_one_line_naming_it(tmp_path):
    """Rank 1 (a child of rank 0 under Lightning's launcher) is killed during epoch 2: rank 0 names it, the last
    checkpoint and the resume command in one line, without a traceback or a hang, and exits with 4."""
    import os
    import signal
    import time

    from tiny_runs import TINY

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "synco.cli", "pretrain", "configs/pretrain/fashion_mnist/synco.yaml", *TINY,
            "data.subset=2048", f"run_dir={run}", f"data.cache_dir={tmp_path / 'cache'}", "trainer.accelerator=cpu",
            "trainer.devices=2", "train.epochs=20"]
    process = subprocess.Popen(argv, cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    checkpoint, deadline = run / "checkpoints" / "last.ckpt", time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), process.communicate()[1][-2000:]
    with open(f"/proc/{process.pid}/task/{process.pid}/children") as f:
        (rank_1,) = [int(pid) for pid in f.read().split()]
    os.kill(rank_1, signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 4, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("synco:")]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    assert f"rank 1 (process {rank_1}" in lines[0] and str(checkpoint) in lines[0] and "--resume" in lines[0]
    assert not (run / ".synco.lock").exists()  # released: the resume command can run at once
