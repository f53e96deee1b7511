"""``synco pretrain CONFIG [KEY=VALUE ...] [--resume]``: train a registered method, then kNN."""

from __future__ import annotations

import pickle

from synco.commands.common import add_recipe_arguments, load_recipe, other_rank, run_training
from synco.engine.metrics import read_metrics
from synco.registry import METHODS


def add_parser(sub) -> None:
    p = sub.add_parser("pretrain", help=f"pretrain a method ({', '.join(METHODS.names())}) and evaluate with kNN",
                       description=f"Pretrain a method ({', '.join(METHODS.names())}) as a recipe says, then "
                       "evaluate it with weighted kNN.")
    add_recipe_arguments(p, "configs/pretrain/cifar10/synco.yaml", "train.epochs=10",
                         "continue from run_dir/checkpoints/last.ckpt (a run directory without a run: start it)")


def knn_table(run_dir: str) -> str:
    """The kNN results of a run as a small text table (read back from metrics.jsonl)."""
    merged: dict = {}
    for record in read_metrics(f"{run_dir}/metrics.jsonl"):
        merged.update(record)
    rows = [("trained encoder", "eval/knn_top1", "eval/knn_top5"),
            ("same encoder, untrained", "eval/knn_top1_untrained", "eval/knn_top5_untrained"),
            ("raw pixels", "eval/knn_top1_raw_pixels", "eval/knn_top5_raw_pixels")]
    lines = [f"{'features':<26}{'kNN top-1 %':>12}{'kNN top-5 %':>12}"]
    for name, top1, top5 in rows:
        if top1 in merged:
            lines.append(f"{name:<26}{merged[top1]:>12.2f}{merged[top5]:>12.2f}")
    return "\n".join(lines)


def resume_hint(run_dir: str, args) -> str:
    """Where an interrupted run stands and the command that continues it.

    The epoch is read from the checkpoint itself (memory-mapped, so even a large one opens at once): the
    epoch's record in metrics.jsonl is written before its checkpoint, so an interrupt between the two
    would make the log one epoch ahead of what --resume continues from.
    """
    import torch

    from synco.pipelines.pretrain import checkpoint_path

    command = " ".join(["synco pretrain", args.recipe, *args.overrides, "--resume",
                        *(["--device", args.device] if args.device else [])])
    path = checkpoint_path(run_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        epoch, mid_epoch = int(state["epoch"]), state.get("mid_epoch")
    except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError):
        epoch = None  # no checkpoint yet, or unreadable: --resume then starts again, or says why
    if epoch is not None:
        what = f"epoch {epoch + 1}, step {int(mid_epoch['epoch_step'])}" if mid_epoch else f"epoch {epoch}"
        return f"The checkpoint of {what} is in {path}; continue with: {command}"
    return f"No checkpoint was written yet, so nothing is lost; start again with: {command}"


def run(args) -> int:
    cfg = load_recipe(args)
    if cfg is None:
        return 2
    from synco.pipelines.pretrain import pretrain  # heavy imports after validation

    record, code = run_training(lambda: pretrain(cfg, resume=args.resume), lambda: resume_hint(cfg.run_dir, args),
                                requeue=cfg.trainer.requeue)
    if code is not None:
        return code
    if other_rank():  # every process returns here; one report is enough
        return 0
    if record.get("finished"):
        print(f"\nkNN on {cfg.data.dataset} test set (k={cfg.eval.knn_k}, t={cfg.eval.knn_temperature}, "
              f"{cfg.eval.feature} features, cosine), run directory {cfg.run_dir}:")
        print(knn_table(cfg.run_dir))
    else:
        print(f"stopped after epoch {record['epoch']} of {cfg.train.epochs}; continue with --resume")
    return 0
