"""``synco linear``: the linear-probe protocol on a pretrained run, over one or several seeds.

Starts from the run's saved configuration (data set, model), loads the checkpoint's query encoder,
freezes it (eval mode: batch-norm statistics stay fixed, as in MoCo's ``main_lincls``) and trains a
linear classifier on its features. Without augmentation the features are extracted once and cached;
with ``linear.augment=true`` every epoch sees new random resized crops and flips. After training,
the backbone's state (weights and batch-norm statistics) is compared with its state before: MoCo's
sanity check that the probe did not change the encoder. Results - per seed and mean +- std - go to
``RUN_DIR/linear/metrics.jsonl``.

Several processes (``trainer.devices``, torchrun, SLURM; see ``launch.protocol_fabric``): feature
extraction is sharded and gathered; on cached features every rank then trains the same classifier
(it is cheap and deterministic); with augmentation each rank reads its share of every epoch and the
classifier's gradients are averaged (DDP), the global batch being ``linear.batch_size``. Rank 0 writes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from synco.config import to_yaml
from synco.data.loaders import LabelledDataset
from synco.engine.inputs import first_images, load_labelled_splits
from synco.engine.launch import per_process_batch, protocol_fabric
from synco.engine.metrics import MetricsWriter
from synco.errors import ensure_writable_dir
from synco.eval.evaluate import sharded_features
from synco.eval.linear import cosine_factor, mean_and_std, topk_accuracy, train_linear_on_features
from synco.runs import frozen_encoder, load_run, run_identity, run_normalisation

log = logging.getLogger(__name__)


class BackboneChangedError(RuntimeError):
    """The frozen encoder changed during the linear probe (MoCo's sanity check failed)."""


def _state_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    """Raise :class:`BackboneChangedError` naming the first entry of the state that changed."""
    for name, value in model.state_dict().items():
        if not torch.equal(value, before[name]):
            raise BackboneChangedError(f"the frozen encoder changed during the linear probe: {name}")


def _train_with_augmentation(fabric, model, train, test_features, test_labels, cfg, lr, mean, std, seed):
    """Linear probe whose every epoch sees new random resized crops and flips of the training images.

    Each process reads every W-th image of the epoch's permutation (``DistributedSampler``, seeded by
    ``seed``) in batches of ``linear.batch_size / W``; DDP averages the classifier's gradients.
    """
    size = cfg.data.image_size
    transform = v2.Compose([
        v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std),
    ])
    batch = per_process_batch(cfg.linear.batch_size, fabric.world_size, "linear.batch_size")
    torch.manual_seed(seed + fabric.global_rank)  # the crops: a different stream on every rank
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(test_features.shape[1], len(train.classes))
    nn.init.normal_(head.weight, std=0.01, generator=g)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=cfg.linear.momentum,
                                weight_decay=cfg.linear.weight_decay)
    head, optimizer = fabric.setup(head, optimizer)
    dataset = LabelledDataset(train, transform)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=fabric.world_size, rank=fabric.global_rank,
                                                  shuffle=True, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg.data.num_workers,
                                         pin_memory=fabric.device.type == "cuda", drop_last=False)
    for epoch in range(cfg.linear.epochs):
        sampler.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_factor(epoch, cfg.linear.epochs)
        for images, labels in loader:
            with torch.no_grad(), fabric.autocast():
                features = model(images.to(fabric.device)).float()
            loss = F.cross_entropy(head(features), labels.to(fabric.device))
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
    with torch.no_grad():
        return topk_accuracy(head(test_features.to(fabric.device)).float().cpu(), test_labels)


def run_linear(target: str | Path, recipe: str | None = None, overrides: list[str] = (), device: str | None = None) -> dict:
    """Linear probe of a run (directory or checkpoint); returns the summary record written last.

    Raises:
        CheckpointError: unreadable checkpoint.
        ConfigError: invalid settings.
        FileExistsError: the output directory already holds linear-probe results.
        BackboneChangedError: the encoder changed while it should have been frozen.
    """
    state, cfg, run_dir = load_run(target, recipe, overrides)
    out_dir = Path(cfg.linear.out_dir) if cfg.linear.out_dir else run_dir / "linear"
    if (out_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{out_dir / 'metrics.jsonl'} already holds linear-probe results; set linear.out_dir")
    ensure_writable_dir(out_dir, "linear.out_dir")
    data = cfg.data
    fabric = protocol_fabric(cfg, device)
    if cfg.linear.augment:  # checked before any work: the global batch must split over the processes
        per_process_batch(cfg.linear.batch_size, fabric.world_size, "linear.batch_size")
    device = fabric.device
    train, test = load_labelled_splits(cfg)
    mean, std = run_normalisation(state, cfg, train)  # before the subset: the pretraining images'
    train = first_images(train, cfg.eval.train_subset, "eval.train_subset", "training")  # all by default
    test = first_images(test, cfg.eval.test_subset, "eval.test_subset", "test")
    feature = cfg.linear.feature or cfg.eval.feature
    model = frozen_encoder(cfg, state, train.channels, feature).to(device)
    before = _state_snapshot(model)
    lr = cfg.linear.lr if cfg.linear.lr is not None else (10.0 if data.dataset == "imagenet100" else 30.0)
    extract = dict(batch_size=cfg.eval.batch_size, device=device, image_size=data.image_size,
                   workers=data.num_workers)
    test_features = sharded_features(model, test, mean, std, **extract)  # (T, F)
    train_features = None if cfg.linear.augment else sharded_features(model, train, mean, std, **extract)

    if fabric.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(to_yaml(cfg))
    metrics = MetricsWriter(out_dir / "metrics.jsonl", enabled=fabric.is_global_zero)
    results = []
    for seed in cfg.linear.seeds:
        if cfg.linear.augment:
            result = _train_with_augmentation(fabric, model, train, test_features, test.labels, cfg, lr, mean, std,
                                              seed)
        else:
            result = train_linear_on_features(
                train_features, train.labels, test_features, test.labels, len(train.classes),
                cfg.linear.epochs, cfg.linear.batch_size, lr, cfg.linear.momentum, cfg.linear.weight_decay, seed,
            )
        check_unchanged(model, before)
        log.info("linear probe, seed %d: top-1 %.2f, top-5 %.2f", seed, result["top1"], result["top5"])
        metrics.write({"seed": seed, "linear/top1": result["top1"], "linear/top5": result["top5"]})
        results.append(result)
    top1, top1_std = mean_and_std([r["top1"] for r in results])
    top5, top5_std = mean_and_std([r["top5"] for r in results])
    summary = {
        "linear/top1_mean": top1, "linear/top1_std": top1_std, "linear/top5_mean": top5, "linear/top5_std": top5_std,
        "linear/seeds": list(cfg.linear.seeds), "linear/epochs": cfg.linear.epochs, "linear/lr": lr,
        "linear/batch_size": cfg.linear.batch_size, "linear/augment": bool(cfg.linear.augment),
        "linear/feature": feature, "linear/checkpoint_epoch": int(state["epoch"]),
        **run_identity(cfg, "linear/"), "linear/backbone_unchanged": True,
        "linear/processes": fabric.world_size,
    }
    metrics.write(summary)
    return summary
