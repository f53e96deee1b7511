"""``synco analyze``: the paper's analyses computed afterwards on a checkpoint.

What pretraining logs every ``eval.analysis_every`` steps and every epoch (``engine/analysis_log.py``),
recomputed from a saved checkpoint - so runs trained without the analyses, or elsewhere, can be
compared with the same figures:

- against the checkpoint's own queue (not updated here), on ``batches`` batches of two augmented
  views of the pretraining images: proxy-task accuracy, the hardness profile, per-strategy largest
  logits and probability mass, and with labels the false-negative rates of the N hardest negatives and
  of the synthetic negatives' sources. The encoders run as in training (train mode: batch statistics);
  synthesis is on whenever the method has synthetic negatives, warm-up or not;
- on the first ``eval.analysis_images`` test images: alignment, uniformity, effective rank and class
  concentration.

Runs in one process (``trainer.devices`` is set to 1); results are appended to
``RUN_DIR/analysis/metrics.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from synco.analysis.log import NegativeLog, representation_record
from synco.compose import build_method
from synco.config import ConfigError, to_yaml
from synco.data.loaders import normalisation
from synco.engine.inputs import augmentation, load_splits, views_iterator
from synco.engine.launch import protocol_fabric
from synco.engine.metrics import MetricsWriter
from synco.errors import ensure_writable_dir
from synco.runs import load_run, run_identity


@torch.no_grad()
def run_analysis(target: str | Path, recipe: str | None = None, overrides: list[str] = (), device: str | None = None,
                 batches: int = 10, seed: int = 0) -> dict:
    """Analyses of a run (directory or checkpoint); returns the record appended to RUN_DIR/analysis/.

    Args:
        batches: batches of ``train.batch_size`` pretraining images observed against the queue.
        seed: the images, augmentations and synthetic draws (never the run's own streams).

    Raises:
        CheckpointError, ConfigError: unreadable checkpoint or invalid settings.
        ValueError: ``batches`` below 1, or data that do not fit the run's configuration.
    """
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    state, cfg, run_dir = load_run(target, recipe, overrides)
    ensure_writable_dir(run_dir / "analysis", "the analysis folder")
    if cfg.eval.analysis_images < 1:
        raise ConfigError(f"eval.analysis_images={cfg.eval.analysis_images} must be at least 1")
    cfg.trainer.devices, cfg.trainer.num_nodes = 1, 1
    fabric = protocol_fabric(cfg, device)
    device = fabric.device
    train, _, test = load_splits(cfg)
    mean, std = normalisation(train)
    method = build_method(cfg, train.channels, len(train), cfg.train.seed, num_classes=len(train.classes))
    method.load_state_dict(state["model"])
    method.to(device).train()
    augment, sample_loader = augmentation(cfg, train, mean, std, device)
    batch_size = cfg.train.batch_size
    batches = min(batches, len(train) // batch_size)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: batches * batch_size]
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    record, synthesize = {}, False
    if method.negative_analyses:  # MoCo-style outputs: queue and synthetic logits
        synthesize = method.negatives is not None and method.negatives.num_synthetic > 0
        log = NegativeLog(method.temperature, train.labels)
        for batch in views_iterator(cfg, train, order, batch_size, augment, generator, device,
                                    sample_loader=sample_loader, worker_seed=seed):
            view_q, view_k = batch.views
            out = method.pair_step(view_q, view_k, batch.index, synthesize, generator, generator, return_sources=True)
            log.observe(out, batch.index, method.queue.image_index)
        record = log.epoch_record()
    first_view = augment.augments[0] if augment is not None else None
    record.update(representation_record(method.embedding_model, test, first_view, cfg.eval.analysis_images, seed + 2,
                                        device))
    record.update({"checkpoint_epoch": int(state["epoch"]), **run_identity(cfg, "analysis/"),
                   "analysis/batches": batches, "analysis/synthesized": synthesize, "analysis/seed": seed})
    out_dir = run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(to_yaml(cfg))
    MetricsWriter(out_dir / "metrics.jsonl").write(record)
    return record
