"""The pretraining loop on Lightning Fabric: devices, precision and DDP are settings, not rewrites.

One step: two augmented views -> query/key -> InfoNCE with queue (and synthetic) negatives ->
backward -> optimizer step -> momentum update -> enqueue. Every epoch ends with an atomic checkpoint
holding encoders, queue and pointer, optimizer, scheduler, epoch and every RNG state, so that
``--resume`` continues exactly as if the run had not stopped.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from synco.data.loaders import normalisation
from synco.engine.analysis_log import NegativeLog, representation_record
from synco.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from synco.engine.config import to_yaml
from synco.engine.cpu_memory import keep_freed_cpu_memory
from synco.engine.evaluate import feature_model, knn_evaluate, sync_batchnorm_statistics
from synco.engine.inputs import augmentation, load_splits, views_iterator
from synco.engine.launch import build_fabric, per_process_batch
from synco.engine.metrics import MetricsWriter, truncate_metrics
from synco.engine.rng import RunGenerators
from synco.engine.step import train_step
from synco.methods.build import build_method

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def lr_factor(epoch: int, epochs: int, schedule: str) -> float:
    """MoCo's per-epoch schedule: ``0.5 (1 + cos(pi epoch / epochs))`` for cosine, 1 for constant."""
    if schedule == "constant" or epochs == 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def pretrain(cfg: DictConfig, resume: bool = False) -> dict:
    """Pretrain MoCo-v2 / MoCHI / SynCo as configured; returns the final metrics record.

    Runs unchanged on one process or on many (every process executes this function; rank 0 writes).

    Raises:
        CheckpointError: ``resume`` without a readable checkpoint in ``run_dir``.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    run_dir = Path(cfg.run_dir)
    if cfg.trainer.reuse_cpu_memory:
        keep_freed_cpu_memory()
    fabric = build_fabric(cfg)
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
    if not resume and (checkpoint_path(run_dir).exists() or (run_dir / "metrics.jsonl").exists()):
        raise ValueError(
            f"run_dir {run_dir} already holds a run; pass --resume to continue it or choose another run_dir"
        )
    state = load_checkpoint(checkpoint_path(run_dir)) if resume else None
    train, bank, test = load_splits(cfg)
    fabric.barrier()
    mean, std = normalisation(train)
    channels = train.channels

    method = build_method(cfg, channels, len(train), seed)
    if cfg.model.sync_batchnorm and world > 1:
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    optimizer = torch.optim.SGD(
        method.encoder_q.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum,
        weight_decay=cfg.train.weight_decay,
    )
    epochs = cfg.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, epochs, cfg.train.schedule)
    )
    generators = RunGenerators(seed, device)
    start_epoch, global_step = 0, 0
    if state is not None:
        try:
            method.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generators.restore(state["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {checkpoint_path(run_dir)} does not match this run: {str(err).splitlines()[0]}"
            ) from None
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        log.info("resumed from %s at epoch %d", checkpoint_path(run_dir), start_epoch)

    metrics = MetricsWriter(run_dir / "metrics.jsonl", enabled=fabric.is_global_zero)
    if state is not None and fabric.is_global_zero:
        truncate_metrics(metrics.path, start_epoch, global_step)  # a crash may have logged past the checkpoint
    if fabric.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))

    knn = dict(mean=mean, std=std, k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
               batch_size=cfg.eval.batch_size, device=device, image_size=cfg.data.image_size,
               workers=cfg.data.num_workers)
    method.to(device)
    if cfg.eval.baselines and state is None:
        untrained = knn_evaluate(feature_model(method, cfg.eval.feature), bank, test, **knn)
        baselines = {"epoch": 0, "eval/knn_top1_untrained": untrained["top1"],
                     "eval/knn_top5_untrained": untrained["top5"]}
        if bank.in_memory:  # raw pixels of images read from disk (different sizes) are not a baseline
            pixels = knn_evaluate(None, bank, test, **knn)
            baselines.update({"eval/knn_top1_raw_pixels": pixels["top1"], "eval/knn_top5_raw_pixels": pixels["top5"]})
        metrics.write(baselines)

    model, optimizer = fabric.setup(method, optimizer)
    model.mark_forward_method("training_step")
    augment, sample_loader = augmentation(cfg, train, mean, std, device)
    warmup = cfg.method.negatives.warmup_epochs
    negative_log = NegativeLog(cfg.method.temperature, train.labels) if cfg.eval.analysis_every else None

    def knn_record() -> dict:
        sync_batchnorm_statistics(method.encoder_q)  # every rank evaluates rank 0's encoder
        result = knn_evaluate(feature_model(method, cfg.eval.feature), bank, test, **knn)
        return {"eval/knn_top1": result["top1"], "eval/knn_top5": result["top5"], "eval/knn_k": cfg.eval.knn_k,
                "eval/knn_temperature": cfg.eval.knn_temperature, "eval/knn_feature": cfg.eval.feature,
                "eval/knn_distance": "cosine"}
    last_epoch = epochs if cfg.train.stop_after is None else min(epochs, start_epoch + cfg.train.stop_after)

    for epoch in range(start_epoch, last_epoch):
        model.train()
        synthesize = epoch >= warmup
        order = torch.randperm(len(train), generator=generators.data)  # (N,) the same on every rank
        worker_seed = int(torch.randint(2**31, (1,), generator=generators.data)) + fabric.global_rank
        steps = len(train) // batch_size  # the ragged tail is dropped, as in MoCo
        started = time.time()
        epoch_lr = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=device)
        bar = tqdm(
            views_iterator(cfg, train, order, batch_size, augment, generators.local, device, fabric.global_rank, world,
                           sample_loader, worker_seed),
            total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
            disable=not (cfg.train.progress and fabric.is_global_zero),
        )
        for step, (view_q, view_k, index) in enumerate(bar):
            observe = None
            if negative_log is not None and fabric.is_global_zero and step % cfg.eval.analysis_every == 0:
                observe = negative_log.observe
            loss = train_step(fabric, model, method, optimizer, view_q, view_k, index, synthesize,
                              generators.local, generators.shuffle, observe)
            loss_sum += loss
            global_step += 1
            if global_step % cfg.train.log_every == 0 or step == steps - 1:
                # The mean over ranks: every rank sees the same value, so all stop together on NaN.
                value = fabric.all_reduce(loss, reduce_op="mean").item()
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"loss is {value} at epoch {epoch + 1}, step {step + 1}; stopping. The last good "
                        f"checkpoint ({checkpoint_path(run_dir)}) is left as it was. Try a lower train.lr."
                    )
                bar.set_postfix(loss=f"{value:.3f}")
                metrics.write({"epoch": epoch + 1, "step": global_step, "train/loss_step": value})
        scheduler.step()
        mean_loss = (fabric.all_reduce(loss_sum, reduce_op="mean") / max(steps, 1)).item()
        if not math.isfinite(mean_loss):
            raise NonFiniteLossError(f"mean loss of epoch {epoch + 1} is {mean_loss}; stopping")
        seconds = time.time() - started
        if negative_log is not None:
            record = negative_log.epoch_record()
            if fabric.is_global_zero:  # rank 0 alone: no collectives inside
                record.update(representation_record(method.encoder_q, test, augment, cfg.eval.analysis_images,
                                                    seed + 5, device))
            metrics.write({"epoch": epoch + 1, "step": global_step, **record})
        metrics.write({
            "epoch": epoch + 1, "step": global_step, "train/loss": mean_loss,
            "train/lr": epoch_lr, "train/synthetic": bool(synthesize), "train/epoch_seconds": seconds,
            "train/images_per_second": steps * batch_size / max(seconds, 1e-9), "train/processes": world,
        })
        log.info("epoch %d/%d loss %.4f (%.1f s)", epoch + 1, epochs, mean_loss, seconds)
        rng = generators.state()  # collective: every rank takes part
        save_checkpoint(fabric, checkpoint_path(run_dir), {
            "model": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "global_step": global_step,
            "rng": rng,
            "config": to_yaml(cfg),
        })
        every = cfg.eval.every_epochs
        if every and (epoch + 1) % every == 0 and epoch + 1 < epochs:  # the last epoch is evaluated below
            metrics.write({"epoch": epoch + 1, "step": global_step, **knn_record()})

    finished = last_epoch >= epochs
    record: dict = {"epoch": last_epoch, "finished": finished}
    if finished:
        record.update(knn_record())
        metrics.write(record)
    return record
