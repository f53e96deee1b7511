"""``synco finetune``: semi-supervised evaluation - fine-tune the whole encoder on 1 % or 10 % of the labels.

The labelled subset is class-balanced and deterministic (``finetune.fraction``, ``finetune.subset_seed``),
written to ``data/subsets/`` the first time and read back afterwards, so every method is fine-tuned on
the same images; ``finetune.subset_file`` takes a list instead (for ImageNet, the canonical 1 % / 10 %
lists of file names). The query encoder's backbone and a new linear classifier are trained together
(train mode: batch norm adapts), with random resized crops and flips, then evaluated on the test split.
Results per seed and mean +- std go to ``RUN_DIR/finetune_<percent>pct/metrics.jsonl``.

``finetune.shots=k`` fine-tunes on k images per class instead (k-shot, also written to a file).
``finetune.loss`` chooses the objective: ``ce`` (cross-entropy), or ``(1 - lambda) CE + lambda L`` with L
SupCon (``supcon``, the ablation without hard-negative weights), SCHaNe's weighted hard negatives
(``schane``, Long et al. 2023) or, as a label-free control, SimCLR's NT-Xent between two views of every
image (``simclr``), on the L2-normalised backbone features of the batch (gathered over ranks, so the
negatives are the global batch's); lambda is ``finetune.contrastive_weight``. ``finetune.views=2`` feeds two
augmented views of every image (SimCLR's default): CE reads both, and an image's other view is a positive of
SupCon and SCHaNe, which at 1-shot have no positive otherwise.

``finetune.val_images=V`` holds V labelled training images out (V / classes per class, drawn with
``finetune.val_seed``) before the fine-tuning subset is drawn from the rest, scores the model on them after
every epoch, and reports the test top-1 of the epoch with the best validation top-1 (ties: the earlier
epoch); ``finetune.patience`` stops a seed after that many epochs without a better validation score. The
test split is read once per seed, after training.

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
from synco.functional import nt_xent_loss_local, schane_loss, supcon_loss
from synco.runs import frozen_encoder, load_run, run_identity, run_normalisation

log = logging.getLogger(__name__)


def validation_subset(cfg, train) -> torch.Tensor | None:
    """Indices of the held-out validation images (``finetune.val_images`` / classes per class, drawn with
    ``finetune.val_seed``), or None without ``finetune.val_images``.

    Raises:
        ValueError: fewer validation images than classes, or more per class than the smallest class holds.
    """
    ft = cfg.finetune
    if ft.val_images is None:
        return None
    classes = int(torch.unique(train.labels).numel())
    if ft.val_images < classes:
        raise ValueError(f"finetune.val_images={ft.val_images} gives no validation image to some of the {classes} "
                         "classes: use at least one per class")
    return shot_subset(train.labels, ft.val_images // classes, ft.val_seed)


def labelled_subset(cfg, train, write: bool = True) -> tuple[torch.Tensor, Path]:
    """Indices of the fine-tuning subset and the file that lists it (written on first use if ``write``;
    the draw is deterministic, so ranks that do not write get the same indices). With a validation split the
    subset is drawn from the images it leaves."""
    ft = cfg.finetune
    if ft.subset_file:
        return read_subset(ft.subset_file, train), Path(ft.subset_file)
    # Beside the cache: data/subsets for data.cache_dir=data/cache (earlier runs), else CACHE/subsets.
    folder = Path(cfg.data.cache_dir).parent if cfg.data.cache_dir else resolve_cache_dir(None)
    held_out = validation_subset(cfg, train)
    tag = f"{subset_tag(ft)}_seed{ft.subset_seed}" + (f"_val{ft.val_images}s{ft.val_seed}" if ft.val_images else "")
    path = folder / "subsets" / f"{cfg.data.dataset}_{tag}.txt"
    if path.exists():
        return read_subset(path, train), path
    pool = torch.arange(len(train.labels))  # (N,) candidates: every image but the validation ones
    if held_out is not None:
        pool = pool[~torch.isin(pool, held_out)]
    if ft.shots:
        indices = pool[shot_subset(train.labels[pool], ft.shots, ft.subset_seed)]
    else:
        indices = pool[balanced_subset(train.labels[pool], ft.fraction, ft.subset_seed)]
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


def views_per_image(ft) -> int:
    """``finetune.views``, or its default: 2 for ``simclr`` (two views are its positive pair), else 1."""
    return ft.views if ft.views is not None else (2 if ft.loss == "simclr" else 1)


def training_loss(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, ft) -> torch.Tensor:
    """``ce``, or ``(1 - lambda) CE + lambda L_contrastive`` over the global batch's normalised features.

    With V views per image, CE averages over every view's logits, the other views of an image are its positives
    for SupCon and SCHaNe, and SimCLR's NT-Xent pairs view 1 with view 2.

    Args:
        features: (V B, F) backbone features, the B first views, then the B second ones (V = 1 or 2).
        logits: (V B, classes), in the same order.
        labels: (B,) this process's labels.
    """
    b = labels.shape[0]
    views = features.shape[0] // b
    ce = F.cross_entropy(logits.float(), labels.repeat(views))
    if ft.loss == "ce":
        return ce
    z = F.normalize(features.float(), dim=1).view(views, b, -1).transpose(0, 1)  # (B, V, F)
    all_z = distributed.all_gather_with_grad(z.contiguous())  # (global B, V, F), every rank
    if ft.loss == "simclr":
        contrastive = nt_xent_loss_local(z[:, 0], z[:, 1], all_z[:, 0], all_z[:, 1], distributed.rank() * b,
                                         ft.temperature)
    else:
        all_labels = distributed.all_gather_cat(labels)
        if ft.loss == "supcon":
            contrastive = supcon_loss(all_z, all_labels, temperature=ft.temperature, base_temperature=ft.temperature)
        else:
            contrastive = schane_loss(all_z, all_labels, ft.temperature, ft.weighting, ft.detach_weights)
    return (1 - ft.contrastive_weight) * ce + ft.contrastive_weight * contrastive


class TwoViews(torch.utils.data.Dataset):
    """``(stack([view_1, view_2]), label)``: two independent augmentations of each image (``finetune.views=2``,
    the default of ``finetune.loss=simclr``)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        first, label = self.dataset[index]
        second, _ = self.dataset[index]
        return torch.stack([first, second]), label  # (2, C, H, W)


def _evaluate(fabric, classifier, data, mean, std, cfg) -> dict[str, float]:
    """Top-1/top-5 of ``classifier`` on ``data`` (eval mode, rank 0's batch-norm statistics, sharded)."""
    classifier.eval()
    sync_batchnorm_statistics(classifier)  # every rank evaluates with rank 0's running statistics
    logits = sharded_features(classifier, data, mean, std, cfg.eval.batch_size, fabric.device,
                              cfg.data.image_size, cfg.data.num_workers)  # (T, classes), all ranks
    return topk_accuracy(logits, data.labels)


def _finetune_once(fabric, encoder, train, indices, test, mean, std, cfg, seed, val=None) -> dict:
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
    if views_per_image(ft) == 2:
        dataset = TwoViews(dataset)
    global_batch = min(ft.batch_size, len(indices) // world * world)  # a tiny subset gives one smaller batch
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process_batch(global_batch, world, "finetune.batch_size"), sampler=sampler,
        drop_last=len(indices) > ft.batch_size, num_workers=cfg.data.num_workers,
        pin_memory=fabric.device.type == "cuda",
    )
    best, best_epoch, best_state, curve = -1.0, None, None, []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * cosine_factor(epoch, epochs)
        for images, labels in loader:
            if images.dim() == 5:  # two views (B, 2, C, H, W): the first views, then the second ones
                images = torch.cat([images[:, 0], images[:, 1]])
            with fabric.autocast():
                features, logits = model.features_and_logits(images.to(fabric.device))
            loss = training_loss(features, logits, labels.to(fabric.device), ft)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
        if val is not None:
            score = _evaluate(fabric, classifier, val, mean, std, cfg)["top1"]
            curve.append(score)
            if score > best:  # strictly better: ties keep the earlier epoch
                best, best_epoch, best_state = score, epoch + 1, copy.deepcopy(classifier.state_dict())
            elif ft.patience is not None and epoch + 1 - best_epoch >= ft.patience:
                break
    if best_state is not None:
        classifier.load_state_dict(best_state)
    result = {**_evaluate(fabric, classifier, test, mean, std, cfg), "epochs": epochs, "lr": lr,
              "classifier_lr": head_lr}
    if val is not None:
        result.update({"val_top1": best, "best_epoch": best_epoch, "val_curve": curve})
    return result


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
    held_out = validation_subset(cfg, train)
    val = train.select(held_out) if held_out is not None else None
    mean, std = run_normalisation(state, cfg, train)  # what the encoder was pretrained with
    encoder = frozen_encoder(cfg, state, train.channels, "backbone")
    if fabric.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(to_yaml(cfg))
    metrics = MetricsWriter(out_dir / "metrics.jsonl", enabled=fabric.is_global_zero)
    results = []
    for seed in ft.seeds:
        result = _finetune_once(fabric, encoder, train, indices, test, mean, std, cfg, seed, val)
        log.info("fine-tuning (%s), seed %d: top-1 %.2f", tag, seed, result["top1"])
        record = {"seed": seed, "finetune/top1": result["top1"], "finetune/top5": result["top5"]}
        if val is not None:
            record.update({"finetune/val_top1": result["val_top1"], "finetune/best_epoch": result["best_epoch"],
                           "finetune/val_curve": result["val_curve"]})
        metrics.write(record)
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
        "finetune/validation_images": None if val is None else len(val),
    }
    if val is not None:
        summary["finetune/val_top1_mean"], summary["finetune/val_top1_std"] = mean_and_std([r["val_top1"] for r in results])
    metrics.write(summary)
    return summary
