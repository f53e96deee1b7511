"""Lightning Fabric from a configuration: devices, nodes, precision and the DDP strategy.

Processes are started by Fabric's launcher (``synco pretrain ... trainer.devices=N``), by torchrun,
or by SLURM (``srun``); Fabric detects which and joins the process group. Nothing here launches
processes itself.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from lightning.fabric import Fabric
from lightning.fabric.strategies import DDPStrategy
from omegaconf import DictConfig, OmegaConf

from synco.checks import ConfigError


def _several_processes(cfg: DictConfig) -> bool:
    devices = cfg.trainer.devices
    many_devices = isinstance(devices, int) and not isinstance(devices, bool) and devices > 1
    many_devices |= isinstance(devices, (list, tuple)) and len(devices) > 1
    return many_devices or cfg.trainer.num_nodes > 1


def build_loggers(names, root) -> list:
    """Lightning loggers by name (``trainer.loggers``), writing under ``root/logs``.

    CSV and TensorBoard write each invocation into a new ``version_N`` folder, so a resumed run never
    overwrites what the earlier invocations logged (metrics.jsonl holds the whole run in one file).

    Raises:
        ConfigError: a logger whose package is not installed (tensorboard, wandb), naming the package.
    """
    loggers = []
    for name in names:
        if name == "csv":
            from lightning.fabric.loggers import CSVLogger

            loggers.append(CSVLogger(root_dir=f"{root}/logs", name="csv"))
        elif name == "tensorboard":
            from lightning.fabric.loggers import TensorBoardLogger

            try:
                loggers.append(TensorBoardLogger(root_dir=f"{root}/logs", name="tensorboard"))
            except ModuleNotFoundError as err:
                raise ConfigError(f"trainer.loggers=[tensorboard] needs the tensorboard package: {err}") from None
        elif name == "wandb":
            try:
                from lightning.pytorch.loggers import WandbLogger

                loggers.append(WandbLogger(save_dir=f"{root}/logs", project="synco"))
            except ModuleNotFoundError as err:
                raise ConfigError(f"trainer.loggers=[wandb] needs the wandb package: {err}") from None
    return loggers


def build_fabric(cfg: DictConfig, loggers_root=None) -> Fabric:
    """Create and launch Fabric; only rank 0 keeps INFO logging.

    With ``loggers_root`` (a run directory) the loggers named in ``trainer.loggers`` are attached.
    """
    strategy = cfg.trainer.strategy
    if strategy in ("auto", "ddp") and _several_processes(cfg):
        # The queue is a buffer that every rank updates identically (keys are gathered before the
        # enqueue), so DDP's per-forward buffer broadcast (64 MiB at K = 65536) is pure overhead; buffers
        # are synchronised once at setup, and batch-norm statistics again before each evaluation.
        # A rank that stalls ends the job after trainer.collective_timeout seconds (rank_faults names it).
        timeout = timedelta(seconds=OmegaConf.select(cfg, "trainer.collective_timeout", default=1800))
        strategy = DDPStrategy(forward_sync_buffers=False, timeout=timeout)
    fabric = Fabric(
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, num_nodes=cfg.trainer.num_nodes,
        precision=cfg.trainer.precision, strategy=strategy,
        loggers=build_loggers(cfg.trainer.loggers, loggers_root) if loggers_root is not None else None,
    )
    fabric.launch()
    if not fabric.is_global_zero:
        logging.getLogger("synco").setLevel(logging.WARNING)
    return fabric


def protocol_fabric(cfg: DictConfig, device: str | None = None) -> Fabric:
    """Fabric for an evaluation protocol (knn, linear, finetune) on a run's saved configuration.

    The protocols inherit the run's ``trainer`` block, so a run pretrained on 8 GPUs is evaluated on 8
    unless ``trainer.devices=1`` is given; ``device`` (the CLI's ``--device``) sets
    ``trainer.accelerator`` (cpu, cuda/gpu, mps, auto).
    """
    if device is not None:
        cfg.trainer.accelerator = "cuda" if device == "gpu" else device
    return build_fabric(cfg)


def per_process_batch(batch_size: int, world: int, key: str) -> int:
    """``batch_size`` (global) split over ``world`` processes; ConfigError naming ``key`` if it does not divide."""
    if batch_size % world != 0:
        raise ConfigError(f"{key}={batch_size} (the global batch) must be a multiple of the {world} processes")
    return batch_size // world
