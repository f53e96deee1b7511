"""``synco knn``: weighted kNN of a run's frozen encoder, with the settings recorded beside the result."""

from __future__ import annotations

from pathlib import Path

from synco.config import to_yaml
from synco.engine.inputs import first_images, load_labelled_splits
from synco.engine.launch import protocol_fabric
from synco.engine.metrics import MetricsWriter
from synco.errors import ensure_writable_dir
from synco.eval.evaluate import knn_evaluate
from synco.runs import frozen_encoder, load_run, run_identity, run_normalisation


def run_knn(target: str | Path, recipe: str | None = None, overrides: list[str] = (), device: str | None = None) -> dict:
    """kNN top-1/top-5 of a run (directory or checkpoint) with ``eval.*`` settings; appends to RUN_DIR/knn/.

    kNN is deterministic, so there are no seeds: repeating it gives the same numbers. With several
    processes the features are extracted in shards and gathered; rank 0 writes.
    """
    state, cfg, run_dir = load_run(target, recipe, overrides)
    fabric = protocol_fabric(cfg, device)
    if fabric.is_global_zero:
        ensure_writable_dir(run_dir / "knn", "the kNN results folder")
    device = fabric.device
    data = cfg.data
    train, test = load_labelled_splits(cfg)
    mean, std = run_normalisation(state, cfg, train)  # before the subset: the pretraining images'
    train = first_images(train, cfg.eval.train_subset, "eval.train_subset", "training")
    test = first_images(test, cfg.eval.test_subset, "eval.test_subset", "test")
    model = frozen_encoder(cfg, state, train.channels, cfg.eval.feature).to(device)
    result = knn_evaluate(model, train, test, mean, std, cfg.eval.knn_k, cfg.eval.knn_temperature,
                          cfg.eval.batch_size, device, data.image_size, data.num_workers)
    record = {"eval/knn_top1": result["top1"], "eval/knn_top5": result["top5"], "eval/knn_k": cfg.eval.knn_k,
              "eval/knn_temperature": cfg.eval.knn_temperature, "eval/knn_feature": cfg.eval.feature,
              "eval/knn_distance": "cosine", "eval/bank_size": len(train), "eval/test_size": len(test),
              "checkpoint_epoch": int(state["epoch"]), **run_identity(cfg, "eval/"),
              "eval/processes": fabric.world_size}
    if fabric.is_global_zero:
        out = run_dir / "knn"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(to_yaml(cfg))
        MetricsWriter(out / "metrics.jsonl").write(record)
    return record
