"""The training loop, reusable: ``fit`` trains a built method for some epochs and can be called again.

One call runs epochs ``start.epoch .. epochs - 1`` of one schedule (for a continual stream: one call
per task, each with its own run directory or checkpoint name). Each step goes through
:func:`synco.engine.step.train_step`; every epoch ends with an atomic checkpoint holding the method's
state (encoders, queues), optimizer, scheduler, epoch, global step and every RNG state, so a resumed
call continues exactly as if it had not stopped. The loop knows nothing about the method beyond the
contract of :class:`synco.methods.base.Method`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from synco.engine.checkpoint import CheckpointError, save_checkpoint, setting_differences, state_mismatch
from synco.engine.compile import compile_for_training
from synco.engine.metrics import MetricsWriter
from synco.engine.optim import build_optimizer, lr_factor
from synco.engine.rng import RunGenerators
from synco.engine.step import train_step
from synco.engine.stop_signals import STOP, TrainingStopped
from synco.distributed import all_gather_cat, rank
from synco.errors import first_line
from synco.methods.base import Method, StepContext

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


@dataclass
class Trainee:
    """A method ready to train: the method itself, its Fabric-wrapped twin, optimizer and LR schedule."""

    method: Method
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @classmethod
    def prepare(cls, fabric, method: Method, cfg: DictConfig) -> Trainee:
        """``train.optimizer`` (SGD by default) over ``method.trainable_parameters()`` with the per-epoch
        schedule of ``cfg.train``, both set up by Fabric (DDP with several processes); with
        ``trainer.compile`` the method's hot parts are compiled first (``synco.engine.compile``)."""
        if cfg.trainer.compile:
            compile_for_training(method, cfg.trainer.compile_mode, fabric.device)
        optimizer = build_optimizer(method.trainable_parameters(), cfg.train)
        epochs, schedule, warmup = cfg.train.epochs, cfg.train.schedule, cfg.train.lr_warmup_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, epochs, schedule, warmup))
        model, optimizer = fabric.setup(method, optimizer)
        model.mark_forward_method("training_step")
        return cls(method, model, optimizer, scheduler)

    def state(self) -> dict:
        return {"model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}


@dataclass
class FitState:
    """Where a ``fit`` call starts (and where it ended): epochs and optimisation steps already done.

    A checkpoint written mid-epoch (at a stop signal) also holds ``epoch_step`` (steps done in epoch
    ``epoch``, 0-based), this rank's partial loss sum of the epoch, and the epoch's data-order stream as
    it was when the epoch began (``data_rng``), so that the epoch's order and worker seed are drawn again.
    """

    epoch: int = 0
    global_step: int = 0
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0
    data_rng: torch.Tensor | None = None

    @classmethod
    def restore(cls, state: dict, trainee: Trainee, generators: RunGenerators, path: Path, cfg=None) -> FitState:
        """Load a checkpoint's method, optimizer, scheduler and RNG states; the position it was written at.

        Raises:
            CheckpointError: the checkpoint does not match this run; names the differing settings (when
                ``cfg`` is given) and the first differing tensors.
        """
        mismatch = state_mismatch(trainee.method, state.get("model", {}))
        if mismatch is not None:
            settings = setting_differences(state.get("config"), cfg) if cfg is not None else []
            raise CheckpointError(f"checkpoint {path} does not match this run: "
                                  + "; ".join([*settings, mismatch]))
        try:
            trainee.method.load_state_dict(state["model"])
            trainee.optimizer.load_state_dict(state["optimizer"])
            trainee.scheduler.load_state_dict(state["scheduler"])
            generators.restore(state["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"checkpoint {path} does not match this run: {first_line(err)}") from None
        mid_epoch = state.get("mid_epoch")
        if not mid_epoch:
            return cls(int(state["epoch"]), int(state["global_step"]))
        return cls(int(state["epoch"]), int(state["global_step"]), int(mid_epoch["epoch_step"]),
                   float(mid_epoch["loss_sums"][rank()]), mid_epoch["data_rng"])


@dataclass
class FitInputs:
    """What the loop reads: the pretraining images and the way their view pairs are made.

    Attributes:
        train: the pretraining split (ImageData or FolderData).
        batches: ``batches(order, worker_seed) -> iterator of Batch`` for one epoch in ``order``.
    """

    train: Any
    batches: Callable[[torch.Tensor, int], Any]


@dataclass
class FitHooks:
    """Optional work the loop does at fixed points, each returning metrics entries.

    Attributes:
        observe: ``observe(out, batch)`` on observed steps (the per-step analyses of negatives), with
            ``observe_every`` steps between observations; ``epoch_analyses()`` then gives their entries.
        epoch_analyses: called at every epoch end, before the epoch's own record.
        evaluate: called after every ``evaluate_every``-th epoch except the last (the kNN monitor).
    """

    observe: Callable[[dict, Any], None] | None = None
    observe_every: int | None = None
    epoch_analyses: Callable[[], dict] | None = None
    evaluate: Callable[[], dict] | None = None
    evaluate_every: int | None = None
    extra_checkpoint: dict = field(default_factory=dict)


def fit(
    fabric,
    trainee: Trainee,
    inputs: FitInputs,
    checkpoint: Path,
    metrics: MetricsWriter,
    generators: RunGenerators,
    cfg: DictConfig,
    start: FitState | None = None,
    hooks: FitHooks | None = None,
) -> FitState:
    """Train ``trainee`` from ``start`` to ``cfg.train.epochs`` (or ``cfg.train.stop_after`` epochs fewer).

    Runs unchanged on one process or many (every process calls it; rank 0 writes). Reads
    ``cfg.train`` (epochs, batch_size, stop_after, log_every, progress, seed) only.

    Args:
        checkpoint: file written atomically after every epoch.
        metrics: receives step and epoch records (and forwards them to Lightning loggers).
        generators: the run's random streams (restored by the caller when resuming).
        start: epochs and steps already done (``FitState.restore`` of a checkpoint), else from scratch.
        hooks: analyses and evaluations on the way.

    Returns:
        The position reached.

    A stop signal (``synco.engine.stop_signals``; handlers installed by the training commands) ends the
    call after the current step: a mid-epoch checkpoint (the epoch's own checkpoint at an epoch's last step)
    is written, then :class:`TrainingStopped` is raised.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the last good checkpoint stays).
        TrainingStopped: a stop signal arrived; the checkpoint it names resumes exactly.
    """
    start = start or FitState()
    hooks = hooks or FitHooks()
    train_cfg = cfg.train
    epochs = train_cfg.epochs
    last_epoch = epochs if train_cfg.stop_after is None else min(epochs, start.epoch + train_cfg.stop_after)
    global_step = start.global_step
    with STOP.armed():
        for epoch in range(start.epoch, last_epoch):
            first_step = start.epoch_step if epoch == start.epoch else 0
            if first_step:  # a mid-epoch checkpoint: draw this epoch's order and worker seed again
                generators.data.set_state(start.data_rng)
            global_step = _epoch(fabric, trainee, inputs, checkpoint, metrics, generators, cfg, hooks, epoch,
                                 global_step, first_step, start.epoch_loss_sum if first_step else 0.0)
    return FitState(last_epoch, global_step)


def _epoch(fabric, trainee: Trainee, inputs: FitInputs, checkpoint: Path, metrics: MetricsWriter,
           generators: RunGenerators, cfg: DictConfig, hooks: FitHooks, epoch: int, global_step: int,
           first_step: int, loss_sum_before: float) -> int:
    """Steps ``first_step ..`` of ``epoch``, its record and its checkpoint; returns the global step reached."""
    train_cfg = cfg.train
    epochs, batch_size = train_cfg.epochs, train_cfg.batch_size
    method, model, optimizer = trainee.method, trainee.model, trainee.optimizer
    train = inputs.train
    world = fabric.world_size
    model.train()
    data_rng = generators.data.get_state()  # what a mid-epoch checkpoint stores to redraw the order
    order = torch.randperm(len(train), generator=generators.data)  # (N,) the same on every rank
    worker_seed = int(torch.randint(2**31, (1,), generator=generators.data)) + fabric.global_rank
    steps = len(train) // batch_size  # the ragged tail is dropped, as in MoCo
    started = time.time()
    epoch_lr = optimizer.param_groups[0]["lr"]
    loss_sum = torch.full((), loss_sum_before, device=fabric.device)
    stop_signal = None
    # disable=None: tqdm stays quiet when stderr is not a terminal (a log file gets no progress lines).
    show = train_cfg.progress and fabric.is_global_zero
    bar = tqdm(inputs.batches(order, worker_seed, first_step), total=steps, initial=first_step,
               desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=None if show else True)
    for step, batch in enumerate(bar, start=first_step):
        observe = hooks.observe is not None and fabric.is_global_zero and step % hooks.observe_every == 0
        progress = global_step / max(1, epochs * steps)  # per-step schedules (MoCo-v2+'s momentum)
        context = StepContext(epoch, generators.local, generators.shuffle, observe=observe, progress=progress)
        loss = train_step(fabric, model, method, optimizer, batch, context, hooks.observe if observe else None)
        loss_sum += loss
        global_step += 1
        if global_step % train_cfg.log_every == 0 or step == steps - 1:
            # The mean over ranks: every rank sees the same value, so all stop together on NaN.
            value = fabric.all_reduce(loss, reduce_op="mean").item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss is {value} at epoch {epoch + 1}, step {step + 1}; stopping. The last good "
                    f"checkpoint ({checkpoint}) is left as it was. Try a lower train.lr."
                )
            bar.set_postfix(loss=f"{value:.3f}")
            metrics.write({"epoch": epoch + 1, "step": global_step, "train/loss_step": value})
        stop_signal = STOP.agreed(fabric)  # collective with several processes: all ranks stop together
        if stop_signal is not None:
            if step < steps - 1:
                _save_mid_epoch(fabric, trainee, checkpoint, generators, hooks, epoch, global_step, step + 1,
                                loss_sum, data_rng)
                raise TrainingStopped(stop_signal, checkpoint, epoch, step + 1)
            break  # the epoch's last step: its own checkpoint follows
    trainee.scheduler.step()
    mean_loss = (fabric.all_reduce(loss_sum, reduce_op="mean") / max(steps, 1)).item()
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(f"mean loss of epoch {epoch + 1} is {mean_loss}; stopping")
    seconds = time.time() - started
    if hooks.epoch_analyses is not None:
        metrics.write({"epoch": epoch + 1, "step": global_step, **hooks.epoch_analyses()})
    metrics.write({
        "epoch": epoch + 1, "step": global_step, "train/loss": mean_loss, "train/lr": epoch_lr,
        "train/epoch_seconds": seconds, "train/images_per_second": steps * batch_size / max(seconds, 1e-9),
        "train/processes": world, **method.epoch_log(epoch),
    })
    log.info("epoch %d/%d loss %.4f (%.1f s)", epoch + 1, epochs, mean_loss, seconds)
    rng = generators.state()  # collective: every rank takes part
    save_checkpoint(fabric, checkpoint, {
        **trainee.state(), "epoch": epoch + 1, "global_step": global_step, "rng": rng,
        **hooks.extra_checkpoint,
    })
    if stop_signal is not None:
        raise TrainingStopped(stop_signal, checkpoint, epoch + 1, 0)
    every = hooks.evaluate_every
    if hooks.evaluate is not None and every and (epoch + 1) % every == 0 and epoch + 1 < epochs:
        metrics.write({"epoch": epoch + 1, "step": global_step, **hooks.evaluate()})
    return global_step


def _save_mid_epoch(fabric, trainee: Trainee, checkpoint: Path, generators: RunGenerators, hooks: FitHooks,
                    epoch: int, global_step: int, epoch_step: int, loss_sum: torch.Tensor,
                    data_rng: torch.Tensor) -> None:
    """A checkpoint inside ``epoch`` after ``epoch_step`` steps, from which ``FitState.restore`` continues exactly:
    the usual states (RNG states as they are now), plus every rank's partial loss sum and the epoch's order stream.
    """
    loss_sums = all_gather_cat(loss_sum.detach().reshape(1).double())  # (W,) in rank order
    save_checkpoint(fabric, checkpoint, {
        **trainee.state(), "epoch": epoch, "global_step": global_step, "rng": generators.state(),
        "mid_epoch": {"epoch_step": epoch_step, "loss_sums": loss_sums.cpu(), "data_rng": data_rng},
        **hooks.extra_checkpoint,
    })
