"""No dead ends: each failure a user meets ends in one clear line (exit code 2), before any long work,
with nothing lost or overwritten; Ctrl-C says how to resume; an interrupted first checkpoint can be resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY, tiny

from synco import cli
from synco.config import ConfigError, load_config
from synco.engine.checkpoint import CheckpointError, FORMAT, load_checkpoint
from synco.pipelines.pretrain import checkpoint_path, pretrain

ROOT = Path(__file__).resolve().parents[1]
TINY_RECIPE = "configs/pretrain/fashion_mnist/synco.yaml"


def synco(capsys, *argv) -> tuple[int, str]:
    """Run the command line in this process: (exit code, what it printed to stderr)."""
    code = cli.main([*argv])
    return code, capsys.readouterr().err


def one_clear_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("synco:")]
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def finished_run(tiny_runs):
    """One tiny finished run (1 epoch, shared by the test run) that the tests copy."""
    return tiny_runs("train.epochs=1", "eval.analysis_every=4")


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("dataset", ["cifar10", "fashion_mnist"])
def test_a_data_root_that_does_not_exist_is_refused_not_replaced_by_the_default(tmp_path, capsys, dataset):
    code, err = synco(capsys, "pretrain", TINY_RECIPE, *TINY, f"data.dataset={dataset}", f"run_dir={tmp_path}/run",
                      "data.root=/path/that/does/not/exist", "train.epochs=1")
    assert code == 2
    one_clear_line(err, "/path/that/does/not/exist")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["pretrain", TINY_RECIPE, "--resume"], ["knn"], ["analyze"], ["export"]])
def test_an_empty_checkpoint_gets_one_line(tmp_path, capsys, command):
    run = tmp_path / "run"
    checkpoint_path(run).parent.mkdir(parents=True)
    checkpoint_path(run).write_bytes(b"")
    if command[0] == "pretrain":
        argv = [*command, *TINY, f"run_dir={run}"]
    elif command[0] == "export":
        argv = ["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "out.pth")]
    else:
        argv = [command[0], str(run)]
    code, err = synco(capsys, *argv)
    assert code == 2
    one_clear_line(err, "empty (0 bytes)", str(checkpoint_path(run)))


def test_a_code_carrying_checkpoint_is_refused_without_suggesting_to_unlock_it(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"format": FORMAT, "payload": subprocess.Popen}, path)  # a pickled class: code on load
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "not a plain weights checkpoint" in message and "could run code" in message
    assert "weights_only" not in message


@pytest.mark.slow
def test_unwritable_places_are_named_before_any_work(tmp_path, capsys, finished_run):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    code, err = synco(capsys, "pretrain", TINY_RECIPE, *TINY, f"run_dir={blocker}/run", "train.epochs=1")
    assert code == 2
    one_clear_line(err, "cannot write run_dir", str(blocker / "run"))
    run = copy_run(finished_run, tmp_path / "run")
    (run / "knn").write_text("a file where the results folder goes")
    code, err = synco(capsys, "knn", str(run))
    assert code == 2
    one_clear_line(err, "cannot write", str(run / "knn"))
    code, err = synco(capsys, "export", str(run), "--format", "torchvision", "--out", str(blocker / "out.pth"))
    assert code == 2
    one_clear_line(err, "cannot write", str(blocker))
    code, err = synco(capsys, "report", str(run), "--out", str(blocker / "report"))
    assert code == 2
    one_clear_line(err, "cannot write", str(blocker / "report"))
    (run / "analysis").write_text("in the way")
    code, err = synco(capsys, "analyze", str(run), "--batches", "1")
    assert code == 2
    one_clear_line(err, "cannot write", str(run / "analysis"))


@pytest.mark.slow
def test_a_checkpoint_of_another_model_placed_in_a_run_is_refused_by_the_protocols(tmp_path, capsys, finished_run):
    other = tmp_path / "other"
    pretrain(tiny(other, "train.epochs=1", "model.embedding_dim=16", "eval.analysis_every=4"))
    run = copy_run(finished_run, tmp_path / "run")
    checkpoint_path(run).write_bytes(checkpoint_path(other).read_bytes())
    for argv in (["knn", str(run)], ["analyze", str(run), "--batches", "1"],
                 ["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "x.pth")]):
        code, err = synco(capsys, *argv)
        assert code == 2
        one_clear_line(err, "does not belong to the run", "model.embedding_dim=16 in the checkpoint, 128")
    assert not (run / "knn").exists()
    # Evaluated where it belongs, the result records which encoder it came from.
    code, _ = synco(capsys, "knn", str(other))
    assert code == 0
    record = json.loads((other / "knn" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["eval/backbone"] == "small_cnn" and record["eval/method"] == "synco"


@pytest.mark.slow
def test_resume_with_another_model_names_what_differs(tmp_path):
    pretrain(tiny(tmp_path, "train.epochs=2", "train.stop_after=1"))
    with pytest.raises(CheckpointError) as caught:
        pretrain(tiny(tmp_path, "train.epochs=2", "method.queue_size=256"), resume=True)
    message = str(caught.value)
    assert "method.queue_size=128 in the checkpoint, 256 here" in message
    assert "queue.keys: checkpoint (128, 128), this run (256, 128)" in message


@pytest.mark.slow
def test_a_run_killed_while_writing_its_first_checkpoint_can_be_resumed(tmp_path):
    clean = tmp_path / "clean"
    pretrain(tiny(clean, "train.epochs=1"))
    killed = tmp_path / "killed"
    # What a process killed during the first checkpoint leaves: its config, a few records, a partial file.
    killed.mkdir()
    (killed / "config.yaml").write_text((clean / "config.yaml").read_text())
    (killed / "metrics.jsonl").write_text('{"epoch": 1, "step": 1, "train/loss_step": 7.0}\n')
    checkpoint_path(killed).parent.mkdir()
    (checkpoint_path(killed).parent / "last.ckpt.tmp").write_bytes(b"half a checkpoint")
    with pytest.raises(ValueError, match="stopped before its first checkpoint; pass --resume"):
        pretrain(tiny(killed, "train.epochs=1"))
    pretrain(tiny(killed, "train.epochs=1"), resume=True)
    a, b = load_checkpoint(checkpoint_path(clean))["model"], load_checkpoint(checkpoint_path(killed))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    clean_records = [json.loads(x) for x in (clean / "metrics.jsonl").read_text().splitlines()]
    killed_records = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert len(clean_records) == len(killed_records)  # the partial run's records are gone


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    """Ctrl-C finishes the step, writes a checkpoint (mid-epoch) and prints one line with the resume command."""
    run = tmp_path / "run"
    # A shell that starts jobs in the background (as CI may) has them ignore SIGINT, and synco keeps an ignored
    # signal ignored: the child restores Python's handler first, as a process in a terminal has it.
    launcher = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('synco.cli', run_name='__main__')")
    argv = [sys.executable, "-c", launcher, "pretrain", TINY_RECIPE, *TINY, f"run_dir={run}",
            f"data.cache_dir={tmp_path}/cache", "train.epochs=50"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not checkpoint_path(run).exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint_path(run).exists(), process.communicate()[1][-2000:]
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [line for line in err.splitlines() if line.startswith("synco: stopped by SIGINT")]
    assert len(lines) == 1 and "--resume" in lines[0] and str(checkpoint_path(run)) in lines[0], err[-2000:]
    state = load_checkpoint(checkpoint_path(run))
    where = (f"epoch {state['epoch'] + 1}, step {state['mid_epoch']['epoch_step']}" if "mid_epoch" in state
             else f"epoch {state['epoch']}")
    assert f"checkpoint of {where}" in lines[0]


@pytest.mark.slow
def test_redirected_output_gets_no_progress_bars(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "synco.cli", "pretrain", TINY_RECIPE, *TINY, f"run_dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache", "train.epochs=1", "train.log_every=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "it/s" not in done.stderr and "s/it" not in done.stderr and "\r" not in done.stderr


def test_version_flag(capsys):
    from synco import __version__

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"synco {__version__}"


def test_a_copied_runs_config_names_where_it_now_is(tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path / "copy")
    with pytest.raises(ConfigError, match=f"names run_dir={finished_run}.*add run_dir={run}"):
        load_config(str(run / "config.yaml"))
    assert load_config(str(run / "config.yaml"), [f"run_dir={tmp_path}/new"]).run_dir == f"{tmp_path}/new"


def test_the_default_cache_is_absolute_and_movable(monkeypatch, tmp_path):
    from synco.data.datasets import resolve_cache_dir

    monkeypatch.delenv("SYNCO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "synco"
    monkeypatch.setenv("SYNCO_CACHE_DIR", str(tmp_path / "mine"))
    assert resolve_cache_dir(None) == tmp_path / "mine"
    assert resolve_cache_dir("data/cache") == Path("data/cache")  # an explicit setting wins


def _fake_run(folder: Path, dataset: str, uniform: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"method:\n  name: synco\ndata:\n  dataset: {dataset}\ntrain:\n  epochs: 2\n")
    records = [{"epoch": 2, "step": 10, "train/loss": 5.0, "eval/knn_top1": 30.0, "analysis/uniform": uniform,
                "analysis/align": 0.1, "analysis/proxy_acc": 0.5}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_report_warns_about_runs_that_do_not_compare_and_collapsed_runs(tmp_path, capsys):
    a = _fake_run(tmp_path / "a", "cifar10", -2.5)
    b = _fake_run(tmp_path / "b", "fashion_mnist", -0.01)
    code = cli.main(["report", str(a), str(b), "--out", str(tmp_path / "report")])
    assert code == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "## Read this first" in page
    assert "the runs differ in data.dataset (a: cifar10, b: fashion_mnist)" in page
    assert "b looks collapsed: uniformity -0.010" in page and "a looks collapsed" not in page
    assert "differ in data.dataset" in capsys.readouterr().err  # said on the console too


@pytest.mark.slow
@pytest.mark.slow
def test_a_wheel_installed_into_a_clean_environment_works_from_another_directory(tmp_path):
    """The wheel builds, installs into a new virtual environment (its dependencies borrowed from this one through a
    path file, the package itself only from the wheel), and from an unrelated directory: `synco --version`, the
    README's examples, a shipped recipe by name, the data and the cache are found."""
    import re
    import sysconfig

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("synco-*.whl")
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., not synco
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ["SYNCO_CACHE_DIR"] = str(tmp_path / "cache")

    def run(*argv):
        done = subprocess.run(argv, cwd=elsewhere, env=environ, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert run(str(env / "bin" / "synco"), "--version").startswith("synco 0.")
    for example in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL):
        run(str(env / "bin" / "python"), "-c", example)  # recipes named as configs/... resolve to the package
    probe = ("import synco; from synco.config import resolve_recipe; from synco.data.datasets import load_dataset, "
             "resolve_cache_dir; print(synco.__file__); print(resolve_recipe('cifar10/synco')); "
             "print(resolve_cache_dir(None)); print(len(load_dataset('fashion_mnist', None, False, None)))")
    location, recipe, cache, size = run(str(env / "bin" / "python"), "-c", probe).split()
    assert location.startswith(str(site)) and recipe.startswith(str(site))
    assert cache == str(tmp_path / "cache") and size == "10000"
    assert "method.negatives.num_hard" in run(str(env / "bin" / "synco"), "config")


def test_a_logger_whose_package_is_missing_is_named():
    import importlib.util

    from synco.engine.launch import build_loggers

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here")
    with pytest.raises(ConfigError, match=r"trainer.loggers=\[tensorboard\] needs the tensorboard package"):
        build_loggers(["tensorboard"], "unused")


def test_a_subset_larger_than_the_data_set_is_refused_before_any_work(tmp_path, capsys):
    code, err = synco(capsys, "pretrain", TINY_RECIPE, *TINY, f"run_dir={tmp_path}/run",
                      f"data.cache_dir={tmp_path}/cache", "data.subset=999999", "train.epochs=1")
    assert code == 2
    one_clear_line(err, "data.subset=999999", "60000")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
