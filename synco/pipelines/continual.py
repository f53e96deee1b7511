"""``synco continual``: train a stream of tasks one after the other and measure the accuracy matrix.

    RUN/tasks.json                  the split (classes or image shards of each task), checked on resume
    RUN/tasks/task_<t>.txt          the pretraining images of task t (synco.data.subsets format)
    RUN/task_<t>/                   a complete pretraining run of task t (config.yaml, metrics.jsonl,
                                    checkpoints/last.ckpt: every task's checkpoint is kept)
    RUN/metrics.jsonl               per task: its training records (with "task"), then R[t] = kNN accuracy on
                                    every task's classes after training task t, and finally the continual metrics

Task t trains through the same ``synco.pipelines.pretrain`` (hence the reusable ``fit`` loop) as any run, on
its own images only and without labels, starting from task t - 1's weights (``train.init_from``: its model
and queue; a fresh optimizer and schedule per task, as CaSSLe's and PNR's scripts restart them per task).
``continual.regularizer=none`` is plain fine-tuning, the lower bound; ``cassle`` and ``pnr`` wrap the
MoCo-v2+ base from task 1 on (``synco.continual.regularized``).
Resume (``--resume``): finished tasks are skipped (their R rows are read back), the current task resumes
exactly from its own checkpoint; a different split than the saved one is refused.

With ``continual.linear_epochs`` the same matrix is also measured by an offline linear probe (one per task
on its classes, frozen backbone features), and after the last task by a probe on all classes.

R[i][j] is the weighted kNN top-1 (``eval.knn_k``, ``eval.knn_temperature``, backbone features) of task i's
encoder with the memory bank and the test images restricted to task j's classes (class split), or on all
classes (data split, where every task covers every class). The random-initialisation accuracies b_j for
forward transfer use the untrained encoder of ``train.seed``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from synco.compose import build_method
from synco.config import to_yaml
from synco.continual.metrics import summary
from synco.continual.tasks import task_indices
from synco.data.loaders import normalisation
from synco.data.subsets import sample_names, write_subset
from synco.distributed import launched_as_rank_zero
from synco.engine.checkpoint import load_checkpoint
from synco.engine.inputs import first_images, load_labelled_splits, pretraining_images
from synco.engine.metrics import MetricsWriter, read_metrics
from synco.engine.run_lock import RunLock
from synco.errors import ensure_writable_dir
from synco.eval.evaluate import knn_evaluate, sharded_features
from synco.methods.base import feature_model
from synco.eval.linear import train_linear_on_features
from synco.pipelines.pretrain import checkpoint_path, pretrain
from synco.runs import run_normalisation

log = logging.getLogger(__name__)


def _finished(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and any(r.get("finished") for r in read_metrics(metrics))


def _epochs_done(run_dir: Path) -> int:
    """Completed epochs of a task's run (0 when it has none)."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return 0
    return max((r["epoch"] for r in read_metrics(metrics) if "train/loss" in r), default=0)


def _task_accuracies(cfg: DictConfig, state: dict | None, train, bank, test, classes, mean, std) -> list[float]:
    """kNN top-1 on each task's classes (all classes for the data split) of the checkpoint ``state`` (None: the
    untrained encoder of ``train.seed``), its inputs normalised with ``mean``/``std``."""
    device = "cuda" if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    method = build_method(cfg, train.channels, len(train), cfg.train.seed, num_classes=len(train.classes))
    if state is not None:
        method.load_state_dict(state["model"])
    model = feature_model(method, cfg.eval.feature).eval().to(device)
    row = []
    for task_classes in classes or [None] * cfg.continual.tasks:
        if task_classes is None:
            task_bank, task_test = bank, test
        else:
            chosen = torch.tensor(task_classes)
            task_bank = bank.select(torch.isin(bank.labels, chosen).nonzero().squeeze(1))
            task_test = test.select(torch.isin(test.labels, chosen).nonzero().squeeze(1))
        result = knn_evaluate(model, task_bank, task_test, mean, std, cfg.eval.knn_k, cfg.eval.knn_temperature,
                              cfg.eval.batch_size, device, cfg.data.image_size, cfg.data.num_workers)
        row.append(result["top1"])
    return row


def _linear_row(cfg: DictConfig, state: dict, train, bank, test, classes, mean, std) -> tuple[list[float], float]:
    """(linear-probe top-1 on each task's classes, linear-probe top-1 on all classes) of the checkpoint ``state``:
    frozen backbone features, a probe per task trained on the bank images of its classes (labels renumbered
    within the task), ``continual.linear_epochs`` epochs, lr ``linear.lr`` (30 when unset), as ``synco linear``."""

    method = build_method(cfg, train.channels, len(train), cfg.train.seed, num_classes=len(train.classes))
    method.load_state_dict(state["model"])
    model = feature_model(method, "backbone").eval()
    extract = dict(batch_size=cfg.eval.batch_size, device="cpu", image_size=cfg.data.image_size,
                   workers=cfg.data.num_workers)
    bank_features, test_features = sharded_features(model, bank, mean, std, **extract), sharded_features(
        model, test, mean, std, **extract)
    lr = cfg.linear.lr if cfg.linear.lr is not None else 30.0

    def probe(task_classes):
        chosen = torch.tensor(task_classes)
        rows, test_rows = torch.isin(bank.labels, chosen), torch.isin(test.labels, chosen)
        renumber = torch.full((int(bank.labels.max()) + 1,), -1, dtype=torch.long)
        renumber[chosen] = torch.arange(len(task_classes))
        result = train_linear_on_features(bank_features[rows], renumber[bank.labels[rows]], test_features[test_rows],
                                          renumber[test.labels[test_rows]], len(task_classes),
                                          cfg.continual.linear_epochs, cfg.linear.batch_size, lr)
        return result["top1"]

    every_class = list(range(len(bank.classes)))
    row = [probe(task_classes) for task_classes in (classes or [every_class] * cfg.continual.tasks)]
    return row, probe(every_class)


def _online_row(cfg: DictConfig, state: dict, train, test, classes, mean, std) -> tuple[list[float], float]:
    """(online-probe top-1 on each task's test images, on all test images) of the checkpoint ``state``: CaSSLe's
    classifier as trained during the stream, its argmax over all classes (class-incremental, as CaSSLe reports)."""

    method = build_method(cfg, train.channels, len(train), cfg.train.seed, num_classes=len(train.classes))
    method.load_state_dict(state["model"])
    model = feature_model(method, "backbone").eval()
    features = sharded_features(model, test, mean, std, batch_size=cfg.eval.batch_size, device="cpu",
                                image_size=cfg.data.image_size, workers=cfg.data.num_workers)
    with torch.no_grad():
        correct = (method.classifier(features).argmax(1) == test.labels).float()  # (N,)
    every_class = list(range(len(test.classes)))
    row = [100 * correct[torch.isin(test.labels, torch.tensor(c))].mean().item()
           for c in (classes or [every_class] * cfg.continual.tasks)]
    return row, 100 * correct.mean().item()


def run_continual(cfg: DictConfig, resume: bool = False) -> dict:
    """Train ``cfg.continual.tasks`` tasks in turn; returns the final record (R and the continual metrics).

    The stream's directory is write-locked while it runs (each task's run directory too, by ``pretrain``).

    Raises:
        RunLockedError: another live process writes the stream.
    """
    ct = cfg.continual
    run_dir = Path(cfg.run_dir)
    labelled, test = load_labelled_splits(cfg)
    pretraining = pretraining_images(cfg, labelled)
    indices, classes = task_indices(pretraining.labels, ct.split, ct.tasks, ct.seed,
                                    OmegaConf.to_object(ct.task_classes) if ct.task_classes is not None else None)
    lock = RunLock(run_dir)  # after the checks above, which write nothing
    if launched_as_rank_zero():
        ensure_writable_dir(run_dir, "run_dir")
        lock.acquire()
    try:
        return _run_continual(cfg, run_dir, resume, labelled, test, pretraining, indices, classes)
    finally:
        lock.release()


def _run_continual(cfg: DictConfig, run_dir: Path, resume: bool, labelled, test, pretraining, indices,
                   classes) -> dict:

    ct = cfg.continual
    split = {"split": ct.split, "seed": ct.seed, "classes": classes, "sizes": [len(i) for i in indices]}
    saved = run_dir / "tasks.json"
    if saved.is_file():
        if not resume:
            raise ValueError(f"{run_dir} already holds a continual run; pass --resume to continue it")
        if json.loads(saved.read_text()) != split:
            raise ValueError(f"{run_dir} was trained with another task split ({saved}); resume it with the same "
                             "continual.split, continual.tasks, continual.seed and continual.task_classes")
    ensure_writable_dir(run_dir, "run_dir")
    names = sample_names(pretraining)
    for t, task in enumerate(indices):
        write_subset(run_dir / "tasks" / f"task_{t}.txt", [names[i] for i in task.tolist()])
    saved.write_text(json.dumps(split))
    (run_dir / "config.yaml").write_text(to_yaml(cfg))

    bank = first_images(labelled, cfg.eval.train_subset, "eval.train_subset", "training")
    test = first_images(test, cfg.eval.test_subset, "eval.test_subset", "test")
    mean, std = normalisation(pretraining)
    metrics_path = run_dir / "metrics.jsonl"
    records = read_metrics(metrics_path) if metrics_path.is_file() else []
    done = {r["task"]: r["continual/R"] for r in records if "continual/R" in r}  # rows of finished tasks
    linear = {r["task"]: (r.get("continual/R_linear"), r.get("continual/linear_all_classes"))
              for r in records if "continual/R" in r}
    online = {r["task"]: (r.get("continual/R_online"), r.get("continual/online_all_classes"))
              for r in records if "continual/R" in r}
    metrics = MetricsWriter(metrics_path)
    try:
        random_init = _task_accuracies(cfg, None, pretraining, bank, test, classes, mean, std)
        matrix = []
        # train.stop_after counts the epochs of this invocation across tasks: a budget used up by the end of a
        # task stops the stream at that task boundary.
        budget = cfg.train.stop_after
        for t in range(ct.tasks):
            task_dir = run_dir / f"task_{t}"
            if t in done and _finished(task_dir):
                matrix.append(done[t])
                continue
            if not _finished(task_dir) and budget == 0:
                log.info("train.stop_after: stopped before task %d/%d", t + 1, ct.tasks)
                return {"task": t, "finished": False}
            overrides = {"run_dir": str(task_dir), "data": {"train_subset_file": str(run_dir / "tasks" / f"task_{t}.txt")},
                         "train": {"init_from": str(checkpoint_path(run_dir / f"task_{t - 1}")) if t else None,
                                   "stop_after": budget},
                         "eval": {"baselines": False}, "continual": {"current_task": t}}
            task_cfg = OmegaConf.merge(cfg, overrides)
            log.info("task %d/%d: %d images%s", t + 1, ct.tasks, len(indices[t]),
                     f", classes {classes[t]}" if classes else "")
            if not _finished(task_dir):
                before = _epochs_done(task_dir)
                pretrain(task_cfg, resume=task_dir.exists())
                if budget is not None:
                    budget -= _epochs_done(task_dir) - before
                if not _finished(task_dir):  # train.stop_after ended this invocation inside the task
                    return {"task": t, "finished": False}
                for record in read_metrics(task_dir / "metrics.jsonl"):
                    metrics.write({"task": t, **record})
            state = load_checkpoint(checkpoint_path(task_dir))
            task_mean, task_std = run_normalisation(state, task_cfg, labelled)  # what task t trained with
            row = _task_accuracies(task_cfg, state, pretraining, bank, test, classes, task_mean, task_std)
            entry = {"task": t, "continual/R": row}
            if ct.linear_epochs:
                entry["continual/R_linear"], entry["continual/linear_all_classes"] = _linear_row(
                    task_cfg, state, pretraining, bank, test, classes, task_mean, task_std)
            if ct.online_probe:
                entry["continual/R_online"], entry["continual/online_all_classes"] = _online_row(
                    task_cfg, state, pretraining, test, classes, task_mean, task_std)
            metrics.write(entry)
            linear[t] = entry.get("continual/R_linear"), entry.get("continual/linear_all_classes")
            online[t] = entry.get("continual/R_online"), entry.get("continual/online_all_classes")
            matrix.append(row)
        record = {"task": None, "finished": True, "continual/R_matrix": matrix, "continual/random_init": random_init,
                  **summary(matrix, random_init)}
        if ct.linear_epochs:  # the same metrics from the linear-probe R, and the all-class probe after the last task
            linear_matrix = [linear[t][0] for t in range(ct.tasks)]
            record["continual/R_linear_matrix"] = linear_matrix
            record["continual/linear_all_classes"] = linear[ct.tasks - 1][1]
            record.update({k.replace("continual/", "continual/linear_"): v for k, v in summary(linear_matrix).items()})
        if ct.online_probe:  # CaSSLe's online probe: reported separately, it differs from the offline one
            online_matrix = [online[t][0] for t in range(ct.tasks)]
            record["continual/R_online_matrix"] = online_matrix
            record["continual/online_all_classes"] = online[ct.tasks - 1][1]
            record.update({k.replace("continual/", "continual/online_"): v for k, v in summary(online_matrix).items()})
        metrics.write(record)
    finally:
        metrics.close()
    return record
