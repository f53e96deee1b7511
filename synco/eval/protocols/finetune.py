"""``synco finetune``: semi-supervised evaluation - fine-tune the whole encoder on 1 % or 10 % of the labels.

The labelled subset is class-balanced and deterministic (``finetune.fraction``, ``finetune.subset_seed``),
written to ``data/subsets/`` the first time and read back afterwards, so every method is fine-tuned on
the same images; ``finetune.subset_file`` takes a list instead (for ImageNet, the canonical 1 % / 10 %
lists of file names). The query encoder's backbone and a new linear classifier are trained together
(train mode: batch norm adapts), with random resized crops and flips, then evaluated on the test split.
Results per seed and mean +- std go to ``RUN_DIR/finetune_<percent>pct/metrics.jsonl``.

``finetune.shots=k`` fine-tunes on k images per class instead (k-shot, also written to a file).
``finetune.loss`` chooses the objective: ``ce`` (cross-entropy), or ``(1 - lambda) CE + lambda L`` with L
SupCon (``supcon``, the ablation without hard-negative weights) or SCHaNe's weighted hard negatives
(``schane``, Long et al. 2023), on the L2-normalised backbone features of the batch (gathered over ranks,
so the negatives are the global batch's); lambda is ``finetune.contrastive_weight`` (0.9).

Several processes (``trainer.devices``, torchrun, SLURM): DDP over the encoder and classifier, each
rank reading every W-th image of each epoch's permutation of the subset (the global batch is
``finetune.batch_size``); batch-norm statistics stay per rank during training, as in MoCo's and SimCLR's
DDP code, and rank 0's are used for the sharded test evaluation. Rank 0 writes.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from synco import distributed
from synco.config import to_yaml
from synco.data.datasets import resolve_cache_dir
from synco.data.loaders import LabelledDataset
from synco.data.subsets import balanced_subset, read_subset, sample_names, shot_subset, write_subset
from synco.engine.inputs import first_images, load_labelled_splits
from synco.engine.launch import per_process_batch, protocol_fabric
from synco.engine.metrics import MetricsWriter
from synco.errors import ensure_writable_dir
from synco.eval.evaluate import sharded_features, sync_batchnorm_statistics
from synco.eval.linear import cosine_factor, mean_and_std, topk_accuracy
from synco.functional import schane_loss, supcon_loss
from synco.runs import frozen_encoder, load_run, run_identity, run_normalisation

log = logging.getLogger(__name__)


def labelled_subset(cfg, train, write: bool = True) -> tuple[torch.Tensor, Path]:
    """Indices of the fine-tuning subset and the file that lists it (written on first use if ``write``;
    the draw is deterministic, so ranks that do not write get the same indices)."""
    ft = cfg.finetune
    if ft.subset_file:
        return read_subset(ft.subset_file, train), Path(ft.subset_file)
    # Beside the cache: data/subsets for data.cache_dir=data/cache (earlier runs), else CACHE/subsets.
    folder = Path(cfg.data.cache_dir).parent if cfg.data.cache_dir else resolve_cache_dir(None)
    path = folder / "subsets" / f"{cfg.data.dataset}_{subset_tag(ft)}_seed{ft.subset_seed}.txt"
    if path.exists():
        return read_subset(path, train), path
    if ft.shots:
        indices = shot_subset(train.labels, ft.shots, ft.subset_seed)
    else:
        indices = balanced_subset(train.labels, ft.fraction, ft.subset_seed)
    if write:
        names = sample_names(train)
        write_subset(path, [names[i] for i in indices.tolist()])
    return indices, path


def subset_tag(ft) -> str:
    """``5shot`` for k-shot, else ``1pct`` / ``10pct`` (the fraction in percent)."""
    return f"{ft.shots}shot" if ft.shots else f"{100 * ft.fraction:g}pct"


class Classifier(nn.Module):
    """Backbone + linear head; ``features_and_logits`` also returns the features the contrastive terms use."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))  # (B, classes)

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)  # (B, F)
        return features, self.head(features)


def training_loss(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, ft) -> torch.Tensor:
    """``ce``, or ``(1 - lambda) CE + lambda L_contrastive`` over the global batch's normalised features."""
    ce = F.cross_entropy(logits.float(), labels)
    if ft.loss == "ce":
        return ce
    z = distributed.all_gather_with_grad(F.normalize(features.float(), dim=1))  # (B, F), every rank
    all_labels = distributed.all_gather_cat(labels)
    if ft.loss == "supcon":
        contrastive = supcon_loss(z.unsqueeze(1), all_labels, temperature=ft.temperature,
                                  base_temperature=ft.temperature)
    else:
        contrastive = schane_loss(z, all_labels, ft.temperature, ft.weighting, ft.detach_weights)
    return (1 - ft.contrastive_weight) * ce + ft.contrastive_weight * contrastive


def _finetune_once(fabric, encoder, train, indices, test, mean, std, cfg, seed) -> dict[str, float]:
    ft = cfg.finetune
    world, rank = fabric.world_size, fabric.global_rank
    torch.manual_seed(seed + rank)  # the crops: a different stream on every rank
    g = torch.Generator().manual_seed(seed)
    backbone = copy.deepcopy(encoder)
    for p in backbone.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        dim = backbone(torch.zeros(2, train.channels, cfg.data.image_size, cfg.data.image_size)).shape[1]
    head = nn.Linear(dim, len(train.classes))
    nn.init.normal_(head.weight, std=0.01, generator=g)
    nn.init.zeros_(head.bias)
    classifier = Classifier(backbone, head)  # (B, C, H, W) -> (B, classes)
    epochs = ft.epochs if ft.epochs is not None else (60 if ft.fraction <= 0.01 else 30)
    lr = ft.lr if ft.lr is not None else 0.05 * ft.batch_size / 256
    # The classifier only sees the (1 - lambda) CE term: finetune.classifier_lr gives it its own rate (e.g. lr / (1 -
    # lambda) restores CE's effective rate under CE + SupCon / SCHaNe); None: the encoder's.
    head_lr = ft.classifier_lr if ft.classifier_lr is not None else lr
    optimizer = torch.optim.SGD([{"params": backbone.parameters(), "base_lr": lr},
                                 {"params": head.parameters(), "base_lr": head_lr}],
                                lr=lr, momentum=ft.momentum, nesterov=ft.nesterov, weight_decay=ft.weight_decay)
    model, optimizer = fabric.setup(classifier, optimizer)
    model.mark_forward_method("features_and_logits")
    transform = v2.Compose([
        v2.RandomResizedCrop(cfg.data.image_size, antialias=True), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std),
    ])
    dataset = torch.utils.data.Subset(LabelledDataset(train, transform), indices.tolist())
    global_batch = min(ft.batch_size, len(indices) // world * world)  # a tiny subset gives one smaller batch
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process_batch(global_batch, world, "finetune.batch_size"), sampler=sampler,
        drop_last=len(indices) > ft.batch_size, num_workers=cfg.data.num_workers,
        pin_memory=fabric.device.type == "cuda",
    )
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * cosine_factor(epoch, epochs)
        for images, labels in loader:
            with fabric.autocast():
                features, logits = model.features_and_logits(images.to(fabric.device))
            loss = training_loss(features, logits, labels.to(fabric.device), ft)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
    sync_batchnorm_statistics(classifier)  # every rank evaluates with rank 0's running statistics
    logits = sharded_features(classifier, test, mean, std, cfg.eval.batch_size, fabric.device,
                              cfg.data.image_size, cfg.data.num_workers)  # (T, classes), all ranks
    return {**topk_accuracy(logits, test.labels), "epochs": epochs, "lr": lr, "classifier_lr": head_lr}


def run_finetune(target: str | Path, recipe: str | None = None, overrides: list[str] = (), device: str | None = None) -> dict:
    """Semi-supervised fine-tuning of a run (directory or checkpoint); returns the summary record.

    Raises:
        CheckpointError, ConfigError: unreadable checkpoint or invalid settings.
        FileExistsError: the output directory already holds results.
        ValueError: a subset file naming samples that the split does not contain.
    """
    state, cfg, run_dir = load_run(target, recipe, overrides)
    ft = cfg.finetune
    tag = subset_tag(ft) + ("" if ft.loss == "ce" else f"_{ft.loss}")
    out_dir = Path(ft.out_dir) if ft.out_dir else run_dir / f"finetune_{tag}"
    if (out_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{out_dir / 'metrics.jsonl'} already holds fine-tuning results; set finetune.out_dir")
    ensure_writable_dir(out_dir, "finetune.out_dir")
    fabric = protocol_fabric(cfg, device)
    per_process_batch(ft.batch_size, fabric.world_size, "finetune.batch_size")  # before any long work
    train, test = load_labelled_splits(cfg)
    test = first_images(test, cfg.eval.test_subset, "eval.test_subset", "test")
    indices, subset_path = labelled_subset(cfg, train, write=fabric.is_global_zero)
    mean, std = run_normalisation(state, cfg, train)  # what the encoder was pretrained with
    encoder = frozen_encoder(cfg, state, train.channels, "backbone")
    if fabric.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(to_yaml(cfg))
    metrics = MetricsWriter(out_dir / "metrics.jsonl", enabled=fabric.is_global_zero)
    results = []
    for seed in ft.seeds:
        result = _finetune_once(fabric, encoder, train, indices, test, mean, std, cfg, seed)
        log.info("fine-tuning (%s), seed %d: top-1 %.2f", tag, seed, result["top1"])
        metrics.write({"seed": seed, "finetune/top1": result["top1"], "finetune/top5": result["top5"]})
        results.append(result)
    top1, top1_std = mean_and_std([r["top1"] for r in results])
    top5, top5_std = mean_and_std([r["top5"] for r in results])
    summary = {
        "finetune/top1_mean": top1, "finetune/top1_std": top1_std, "finetune/top5_mean": top5,
        "finetune/top5_std": top5_std, "finetune/seeds": list(ft.seeds),
        "finetune/fraction": None if ft.shots else ft.fraction, "finetune/shots": ft.shots, "finetune/loss": ft.loss,
        "finetune/contrastive_weight": None if ft.loss == "ce" else ft.contrastive_weight,
        "finetune/labelled_images": len(indices), "finetune/subset_file": str(subset_path),
        "finetune/epochs": results[0]["epochs"], "finetune/lr": results[0]["lr"],
        "finetune/classifier_lr": results[0]["classifier_lr"],
        "finetune/checkpoint_epoch": int(state["epoch"]), **run_identity(cfg, "finetune/"),
        "finetune/processes": fabric.world_size,
    }
    metrics.write(summary)
    return summary
