"""``synco finetune``: semi-supervised evaluation - fine-tune the whole encoder on 1 % or 10 % of the labels.

The labelled subset is class-balanced and deterministic (``finetune.fraction``, ``finetune.subset_seed``),
written to ``data/subsets/`` the first time and read back afterwards, so every method is fine-tuned on
the same images; ``finetune.subset_file`` takes a list instead (for ImageNet, the canonical 1 % / 10 %
lists of file names). The query encoder's backbone and a new linear classifier are trained together
(train mode: batch norm adapts), with random resized crops and flips, then evaluated on the test split.
Results per seed and mean +- std go to ``RUN_DIR/finetune_<percent>pct/metrics.jsonl``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from synco.data.loaders import LabelledDataset, normalisation
from synco.data.subsets import balanced_subset, read_subset, sample_names, write_subset
from synco.data.transforms import eval_transform
from synco.engine.config import to_yaml
from synco.engine.inputs import load_labelled_splits
from synco.engine.linear import frozen_encoder, load_run
from synco.engine.metrics import MetricsWriter
from synco.eval.linear import cosine_factor, mean_and_std, topk_accuracy

log = logging.getLogger(__name__)


def labelled_subset(cfg, train) -> tuple[torch.Tensor, Path]:
    """Indices of the fine-tuning subset and the file that lists it (written on first use)."""
    ft = cfg.finetune
    if ft.subset_file:
        return read_subset(ft.subset_file, train), Path(ft.subset_file)
    percent = f"{100 * ft.fraction:g}"
    path = Path(cfg.data.cache_dir).parent / "subsets" / f"{cfg.data.dataset}_{percent}pct_seed{ft.subset_seed}.txt"
    if path.exists():
        return read_subset(path, train), path
    indices = balanced_subset(train.labels, ft.fraction, ft.subset_seed)
    names = sample_names(train)
    write_subset(path, [names[i] for i in indices.tolist()])
    return indices, path


@torch.no_grad()
def _evaluate(model, head, test, mean, std, cfg, device) -> dict[str, float]:
    transform = eval_transform(mean, std, None if test.in_memory else cfg.data.image_size)
    loader = torch.utils.data.DataLoader(LabelledDataset(test, transform), batch_size=cfg.eval.batch_size,
                                         num_workers=cfg.data.num_workers)
    model.eval()
    logits, labels = [], []
    for images, y in loader:
        logits.append(head(model(images.to(device)).float()).cpu())
        labels.append(y)
    return topk_accuracy(torch.cat(logits), torch.cat(labels))


def _finetune_once(encoder, train, indices, test, mean, std, cfg, seed, device) -> dict[str, float]:
    ft = cfg.finetune
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(encoder).to(device)
    for p in model.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        dim = model(torch.zeros(2, train.channels, cfg.data.image_size, cfg.data.image_size, device=device)).shape[1]
    head = nn.Linear(dim, len(train.classes)).to(device)
    nn.init.normal_(head.weight, std=0.01, generator=g)
    nn.init.zeros_(head.bias)
    epochs = ft.epochs if ft.epochs is not None else (60 if ft.fraction <= 0.01 else 30)
    lr = ft.lr if ft.lr is not None else 0.05 * ft.batch_size / 256
    optimizer = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=lr, momentum=ft.momentum,
                                nesterov=ft.nesterov, weight_decay=ft.weight_decay)
    transform = v2.Compose([
        v2.RandomResizedCrop(cfg.data.image_size, antialias=True), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std),
    ])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(LabelledDataset(train, transform), indices.tolist()),
        batch_size=min(ft.batch_size, len(indices)), shuffle=True, generator=g, drop_last=len(indices) > ft.batch_size,
        num_workers=cfg.data.num_workers, pin_memory=str(device).startswith("cuda"),
    )
    for epoch in range(epochs):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_factor(epoch, epochs)
        for images, labels in loader:
            loss = F.cross_entropy(head(model(images.to(device))), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    result = _evaluate(model, head, test, mean, std, cfg, device)
    return {**result, "epochs": epochs, "lr": lr}


def run_finetune(target: str | Path, recipe: str | None = None, overrides: list[str] = (), device: str = "cpu") -> dict:
    """Semi-supervised fine-tuning of a run (directory or checkpoint); returns the summary record.

    Raises:
        CheckpointError, ConfigError: unreadable checkpoint or invalid settings.
        FileExistsError: the output directory already holds results.
        ValueError: a subset file naming samples that the split does not contain.
    """
    state, cfg, run_dir = load_run(target, recipe, overrides)
    ft = cfg.finetune
    percent = f"{100 * ft.fraction:g}"
    out_dir = Path(ft.out_dir) if ft.out_dir else run_dir / f"finetune_{percent}pct"
    if (out_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{out_dir / 'metrics.jsonl'} already holds fine-tuning results; set finetune.out_dir")
    device = torch.device(device)
    train, test = load_labelled_splits(cfg)
    test = test.head(cfg.eval.test_subset)
    indices, subset_path = labelled_subset(cfg, train)
    mean, std = normalisation(train)
    encoder = frozen_encoder(cfg, state, train.channels, "backbone")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(to_yaml(cfg))
    metrics = MetricsWriter(out_dir / "metrics.jsonl")
    results = []
    for seed in ft.seeds:
        result = _finetune_once(encoder, train, indices, test, mean, std, cfg, seed, device)
        log.info("fine-tuning on %s %% of the labels, seed %d: top-1 %.2f", percent, seed, result["top1"])
        metrics.write({"seed": seed, "finetune/top1": result["top1"], "finetune/top5": result["top5"]})
        results.append(result)
    top1, top1_std = mean_and_std([r["top1"] for r in results])
    top5, top5_std = mean_and_std([r["top5"] for r in results])
    summary = {
        "finetune/top1_mean": top1, "finetune/top1_std": top1_std, "finetune/top5_mean": top5,
        "finetune/top5_std": top5_std, "finetune/seeds": list(ft.seeds), "finetune/fraction": ft.fraction,
        "finetune/labelled_images": len(indices), "finetune/subset_file": str(subset_path),
        "finetune/epochs": results[0]["epochs"], "finetune/lr": results[0]["lr"],
        "finetune/checkpoint_epoch": int(state["epoch"]),
    }
    metrics.write(summary)
    return summary
