"""``synco pretrain``: build the configured method and its data, then hand them to :func:`synco.engine.fit.fit`.

Before any work: the run directory must not already hold a run (unless resuming), the checkpoint must
load, the data must be found and fit the batch. Afterwards: the final kNN evaluation. With
``eval.baselines`` the untrained encoder and raw pixels are evaluated first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from synco.analysis.log import NegativeLog, representation_record
from synco.compose import build_method
from synco.config import to_yaml
from synco.data.loaders import normalisation
from synco.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from synco.engine.cpu_memory import keep_freed_cpu_memory
from synco.engine.fit import FitHooks, FitInputs, FitState, NonFiniteLossError, Trainee, fit
from synco.engine.inputs import augmentation, check_training_labels, load_splits, views_iterator
from synco.engine.launch import build_fabric, per_process_batch
from synco.engine.metrics import MetricsWriter, truncate_metrics
from synco.engine.rank_faults import register_processes
from synco.engine.rng import RunGenerators
from synco.engine.run_lock import hold_run_lock
from synco.eval.evaluate import knn_evaluate, sync_batchnorm_statistics
from synco.methods.base import feature_model

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "checkpoint_path", "pretrain"]


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def started_without_checkpoint(run_dir: Path) -> bool:
    """A run that wrote its files but stopped (was killed) before its first checkpoint was complete."""
    return not checkpoint_path(run_dir).exists() and any(
        (run_dir / name).exists() for name in ("metrics.jsonl", "config.yaml", "checkpoints/last.ckpt.tmp"))


def _checkpoint_to_resume(run_dir: Path, resume: bool) -> dict | None:
    """The checkpoint ``--resume`` continues from (None: start at epoch 0); refuses to overwrite a run.

    Called while holding the run's write lock, so a run without a checkpoint is not being written by anyone.
    A run that stopped before its first checkpoint has nothing to lose: ``--resume`` starts it again from
    epoch 0 (its partial files are replaced), and a plain start says to pass ``--resume``. ``--resume`` on
    a run directory with no run in it starts one, so that one job script serves the first start and every
    restart of a requeued job.
    """
    if resume:
        if started_without_checkpoint(run_dir):
            log.warning("%s has no checkpoint yet (the run stopped during its first epoch): starting it again "
                        "from epoch 0", run_dir)
            return None
        if not checkpoint_path(run_dir).exists():
            log.info("--resume: %s holds no run yet; starting one from epoch 0", run_dir)
            return None
        return load_checkpoint(checkpoint_path(run_dir))
    if started_without_checkpoint(run_dir):
        raise ValueError(f"run_dir {run_dir} holds a run that stopped before its first checkpoint; pass --resume to "
                         "start it again from epoch 0 (it has no trained epoch to lose), or choose another run_dir")
    if checkpoint_path(run_dir).exists():
        raise ValueError(
            f"run_dir {run_dir} already holds a run; pass --resume to continue it or choose another run_dir"
        )
    return None


def pretrain(cfg: DictConfig, resume: bool = False) -> dict:
    """Pretrain the method ``cfg.method.name`` as configured; returns the final metrics record.

    Runs unchanged on one process or on many (every process executes this function; rank 0 writes). The
    run directory's write lock is held throughout (``synco.engine.run_lock``): a second writer is refused.

    Raises:
        CheckpointError: ``resume`` with an unreadable checkpoint in ``run_dir``.
        RunLockedError: another live process writes ``run_dir``.
        NonFiniteLossError: the loss became NaN or infinite.
        TrainingStopped: a stop signal (SIGTERM, SIGINT, SIGUSR1) arrived; a checkpoint that resumes exactly
            was written first.
    """
    run_dir = Path(cfg.run_dir)
    if cfg.trainer.reuse_cpu_memory:
        keep_freed_cpu_memory()
    fabric = build_fabric(cfg, loggers_root=run_dir)
    register_processes(fabric, cfg.trainer.collective_timeout)  # names a rank that dies (rank_faults)
    with hold_run_lock(fabric, run_dir):
        return _pretrain(cfg, fabric, run_dir, resume)


def _pretrain(cfg: DictConfig, fabric, run_dir: Path, resume: bool) -> dict:
    device, world = fabric.device, fabric.world_size
    seed = cfg.train.seed
    batch_size = cfg.train.batch_size  # global
    per_process_batch(batch_size, world, "train.batch_size")  # ConfigError (a ValueError) if it does not split
    if cfg.model.sync_batchnorm and world > 1 and device.type == "cpu":
        raise ValueError(
            "model.sync_batchnorm=true needs GPUs (PyTorch's SyncBatchNorm does not run on the CPU); "
            "on CPUs keep model.shuffle_keys=true, MoCo's shuffle-BN across processes"
        )

    # Everything that can fail fast does so before training starts, and before rank 0 writes anything.
    state = _checkpoint_to_resume(run_dir, resume)
    train, bank, test = load_splits(cfg)
    fabric.barrier()
    mean, std = normalisation(train)

    method = build_method(cfg, train.channels, len(train), seed, num_classes=len(train.classes))
    if cfg.train.init_from and state is None:  # a resumed run has its own weights already
        try:
            method.load_initial_state(load_checkpoint(cfg.train.init_from)["model"])
        except ValueError as err:
            raise CheckpointError(f"train.init_from={cfg.train.init_from}: {err}") from None
    if method.needs_labels:
        check_training_labels(train, cfg.method.name)
    if cfg.model.sync_batchnorm and world > 1:
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    generators = RunGenerators(seed, device)
    trainee = Trainee.prepare(fabric, method, cfg)
    start = FitState()
    if state is not None:
        start = FitState.restore(state, trainee, generators, checkpoint_path(run_dir), cfg)
        where = f"epoch {start.epoch + 1}, step {start.epoch_step}" if start.epoch_step else f"epoch {start.epoch}"
        log.info("resumed from %s at %s", checkpoint_path(run_dir), where)

    metrics = MetricsWriter(run_dir / "metrics.jsonl", enabled=fabric.is_global_zero, loggers=fabric.loggers)
    if fabric.is_global_zero and (state is not None or resume):
        # A crash may have logged past the checkpoint; a run restarted from epoch 0 keeps nothing.
        # A mid-epoch checkpoint keeps the step records of its unfinished epoch (numbered epoch + 1) up to its step.
        logged_epoch = start.epoch + (1 if start.epoch_step else 0)
        truncate_metrics(metrics.path, logged_epoch, start.global_step if state is not None else -1)
    if fabric.is_global_zero:  # the folder exists: ensure_writable_dir made it
        (run_dir / "config.yaml").write_text(to_yaml(cfg))

    knn = dict(mean=mean, std=std, k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
               batch_size=cfg.eval.batch_size, device=device, image_size=cfg.data.image_size,
               workers=cfg.data.num_workers)
    if cfg.eval.baselines and state is None:
        untrained = knn_evaluate(feature_model(method, cfg.eval.feature), bank, test, **knn)
        baselines = {"epoch": 0, "eval/knn_top1_untrained": untrained["top1"],
                     "eval/knn_top5_untrained": untrained["top5"]}
        if bank.in_memory:  # raw pixels of images read from disk (different sizes) are not a baseline
            pixels = knn_evaluate(None, bank, test, **knn)
            baselines.update({"eval/knn_top1_raw_pixels": pixels["top1"], "eval/knn_top5_raw_pixels": pixels["top5"]})
        metrics.write(baselines)

    augment, sample_loader = augmentation(cfg, train, mean, std, device)

    def batches(order, worker_seed, first_step=0):
        return views_iterator(cfg, train, order, batch_size, augment, generators.local, device, fabric.global_rank,
                              world, sample_loader, worker_seed, first_step)

    def knn_record() -> dict:
        sync_batchnorm_statistics(method.embedding_model)  # every rank evaluates rank 0's encoder
        result = knn_evaluate(feature_model(method, cfg.eval.feature), bank, test, **knn)
        return {"eval/knn_top1": result["top1"], "eval/knn_top5": result["top5"], "eval/knn_k": cfg.eval.knn_k,
                "eval/knn_temperature": cfg.eval.knn_temperature, "eval/knn_feature": cfg.eval.feature,
                "eval/knn_distance": "cosine"}

    hooks = FitHooks(evaluate=knn_record, evaluate_every=cfg.eval.every_epochs,
                     extra_checkpoint={"config": to_yaml(cfg), "method": cfg.method.name,
                                       "normalisation": {"mean": mean, "std": std}})
    if cfg.eval.analysis_every:
        # The per-step analyses of negatives need MoCo-style outputs; the held-out ones apply to any method.
        negative_log = NegativeLog(method.temperature, train.labels) if method.negative_analyses else None

        def epoch_analyses() -> dict:
            record = negative_log.epoch_record() if negative_log is not None else {}
            if fabric.is_global_zero:  # rank 0 alone: no collectives inside
                first_view = augment.augments[0] if augment is not None else None  # the training augmentation
                record.update(representation_record(method.embedding_model, test, first_view,
                                                    cfg.eval.analysis_images, seed + 5, device))
            return record

        if negative_log is not None:
            hooks.observe, hooks.observe_every = negative_log.observe_step, cfg.eval.analysis_every
        hooks.epoch_analyses = epoch_analyses

    try:
        end = fit(fabric, trainee, FitInputs(train, batches), checkpoint_path(run_dir), metrics, generators, cfg,
                  start, hooks)
        finished = end.epoch >= cfg.train.epochs
        if cfg.train.epochs == 0 and not checkpoint_path(run_dir).exists():
            # The untrained (or model.pretrained) encoder as a checkpoint of epoch 0, so that every protocol
            # (knn, linear, finetune, analyze) evaluates it like any run.
            save_checkpoint(fabric, checkpoint_path(run_dir), {
                **trainee.state(), "epoch": 0, "global_step": 0, "rng": generators.state(),
                **hooks.extra_checkpoint})
        record: dict = {"epoch": end.epoch, "finished": finished, "train/uses_labels": method.needs_labels}
        if finished:
            record.update(knn_record())
            metrics.write(record)
    finally:
        metrics.close()
    return record
