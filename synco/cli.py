"""Command line: ``synco pretrain CONFIG [KEY=VALUE ...] [--resume]`` and ``synco bench heads|steps``."""

from __future__ import annotations

import argparse
import logging
import sys

from synco.engine.checkpoint import CheckpointError
from synco.engine.config import ConfigError, load_config
from synco.engine.metrics import read_metrics


def _table(run_dir: str) -> str:
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


#: What the protocol and export commands report as a user error (exit code 2) rather than a traceback.
_USER_ERRORS = (CheckpointError, ConfigError, FileExistsError, FileNotFoundError, ValueError)


def _guarded(call, *arguments):
    """``call(*arguments)``, or None after printing a user error (the caller then exits with 2)."""
    try:
        return call(*arguments)
    except _USER_ERRORS as err:
        print(f"synco: error: {err}", file=sys.stderr)
        return None


def _other_rank() -> bool:
    """True in every process but rank 0 of a multi-process run: one summary on the console is enough."""
    from synco.distributed import rank

    return rank() != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synco", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretrain MoCo-v2, MoCHI or SynCo and evaluate with kNN")
    p.add_argument("config", help="YAML recipe, e.g. configs/pretrain/cifar10/synco.yaml")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides with dotted keys, e.g. train.epochs=10")
    p.add_argument("--resume", action="store_true", help="continue from run_dir/checkpoints/last.ckpt")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    lin = sub.add_parser("linear", help="linear probe on the frozen encoder of a run (top-1/top-5, seeds)")
    lin.add_argument("target", help="run directory or checkpoint file")
    lin.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. linear.epochs=100 'linear.seeds=[0,1,2]'")
    lin.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    lin.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")
    lin.add_argument("--quiet", action="store_true", help="log warnings only")
    fin = sub.add_parser("finetune", help="semi-supervised: fine-tune the encoder on 1 %% or 10 %% of the labels")
    fin.add_argument("target", help="run directory or checkpoint file")
    fin.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. finetune.fraction=0.1 'finetune.seeds=[0,1,2]'")
    fin.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    fin.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")
    knn = sub.add_parser("knn", help="weighted kNN on the frozen encoder of a run (settings recorded)")
    knn.add_argument("target", help="run directory or checkpoint file")
    knn.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. eval.knn_k=20 eval.feature=embedding")
    knn.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    knn.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")
    ana = sub.add_parser("analyze", help="the paper's analyses on a run's checkpoint (proxy task, hardness, "
                         "strategies, false negatives, align/uniform, rank, class concentration)")
    ana.add_argument("target", help="run directory or checkpoint file")
    ana.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. eval.analysis_images=5000")
    ana.add_argument("--recipe", default=None, help="YAML merged over the run's saved configuration")
    ana.add_argument("--batches", type=int, default=10, help="training batches observed against the queue")
    ana.add_argument("--seed", type=int, default=0, help="images, augmentations and synthetic draws")
    ana.add_argument("--device", default=None, help="sets trainer.accelerator (cpu, cuda, auto); default: the run's")
    rep = sub.add_parser("report", help="figures and a Markdown page comparing runs side by side")
    rep.add_argument("runs", nargs="+", help="run directories")
    rep.add_argument("--out", required=True, help="output folder for report.md and the PNG figures")
    exp = sub.add_parser("export", help="export a run's backbone for torchvision or Detectron2")
    exp.add_argument("target", help="run directory or checkpoint file")
    exp.add_argument("--format", required=True, choices=["torchvision", "detectron2"])
    exp.add_argument("--out", required=True, help="output file (.pth for torchvision, .pkl for detectron2)")
    from synco.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    # KEY=VALUE overrides may come before or after the options (argparse alone would stop at --recipe).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or not all("=" in item and not item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if args.command == "bench":
        from synco.bench.cli import run as run_bench

        return run_bench(args)
    if args.command == "export":
        return _export(args)
    if args.command == "report":
        from synco.report import write_report

        try:
            page = write_report(args.runs, args.out)
        except (FileNotFoundError, ValueError) as err:
            print(f"synco: error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {page} and its figures")
        return 0
    if args.command == "knn":
        return _knn(args)
    if args.command == "analyze":
        return _analyze(args)
    if args.command == "finetune":
        return _finetune(args)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "linear":
        return _linear(args)

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"synco: configuration error: {err}", file=sys.stderr)
        return 2
    from synco.engine.pretrain import NonFiniteLossError, pretrain  # heavy imports after validation

    try:
        record = pretrain(cfg, resume=args.resume)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"synco: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"synco: training stopped: {err}", file=sys.stderr)
        return 3
    if _other_rank():  # every process returns here; one report is enough
        return 0
    if record.get("finished"):
        print(f"\nkNN on {cfg.data.dataset} test set (k={cfg.eval.knn_k}, t={cfg.eval.knn_temperature}, "
              f"{cfg.eval.feature} features, cosine), run directory {cfg.run_dir}:")
        print(_table(cfg.run_dir))
    else:
        print(f"stopped after epoch {record['epoch']} of {cfg.train.epochs}; continue with --resume")
    return 0


def _finetune(args) -> int:
    from synco.engine.finetune import run_finetune

    r = _guarded(run_finetune, args.target, args.recipe, args.overrides, args.device)
    if r is None:
        return 2
    if _other_rank():
        return 0
    print(f"fine-tuned on {100 * r['finetune/fraction']:g} % of the labels ({r['finetune/labelled_images']} images, "
          f"{r['finetune/subset_file']}), {r['finetune/epochs']} epochs, seeds {r['finetune/seeds']}: "
          f"top-1 {r['finetune/top1_mean']:.2f} +- {r['finetune/top1_std']:.2f} %, "
          f"top-5 {r['finetune/top5_mean']:.2f} +- {r['finetune/top5_std']:.2f} %")
    return 0


def _analyze(args) -> int:
    from synco.engine.analyze import run_analysis

    r = _guarded(run_analysis, args.target, args.recipe, args.overrides, args.device, args.batches, args.seed)
    if r is None:
        return 2
    print(f"analyses of epoch {r['checkpoint_epoch']} ({r['analysis/batches']} batches against the saved queue, "
          f"synthesis {'on' if r['analysis/synthesized'] else 'off'}), appended to {args.target}/analysis/metrics.jsonl:")
    for key, value in r.items():
        if key.startswith("analysis/") and isinstance(value, float):
            print(f"  {key[9:]:<34}{value:.4f}")
    return 0


def _knn(args) -> int:
    from synco.engine.knn import run_knn

    r = _guarded(run_knn, args.target, args.recipe, args.overrides, args.device)
    if r is None:
        return 2
    if _other_rank():
        return 0
    print(f"kNN (k={r['eval/knn_k']}, t={r['eval/knn_temperature']}, {r['eval/knn_feature']} features, cosine; "
          f"bank {r['eval/bank_size']}, test {r['eval/test_size']}): top-1 {r['eval/knn_top1']:.2f} %, "
          f"top-5 {r['eval/knn_top5']:.2f} %")
    return 0


def _export(args) -> int:
    from synco.engine.export import export_run

    info = _guarded(export_run, args.target, args.format, args.out)
    if info is None:
        return 2
    print(f"wrote {info['out']}: {info['tensors']} tensors of the {info['backbone']} query backbone "
          f"(epoch {info['epoch']}) in {args.format}'s names")
    if info["small_stem"]:
        print("note: this backbone has the CIFAR stem (3x3 conv1, no max-pool); replace conv1 and maxpool "
              "of the torchvision model before loading")
    return 0


def _linear(args) -> int:
    from synco.engine.linear import BackboneChangedError, run_linear

    try:
        summary = _guarded(run_linear, args.target, args.recipe, args.overrides, args.device)
    except BackboneChangedError as err:
        print(f"synco: {err}", file=sys.stderr)
        return 4
    if summary is None:
        return 2
    if _other_rank():
        return 0
    seeds = summary["linear/seeds"]
    print(f"linear probe ({summary['linear/epochs']} epochs, lr {summary['linear/lr']}, "
          f"{summary['linear/feature']} features, augment={summary['linear/augment']}) over seeds {seeds}:")
    print(f"top-1 {summary['linear/top1_mean']:.2f} +- {summary['linear/top1_std']:.2f} %, "
          f"top-5 {summary['linear/top5_mean']:.2f} +- {summary['linear/top5_std']:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
