"""Side-by-side quality benchmark: methods with one budget, several seeds (MoCo-v2, MoCHI and SynCo by
default, and each SynCo strategy alone); evaluated with kNN, the linear probe and (method runs) fine-tuning
on 1 % of the labels, summarised by ``synco report``.

Every run is a separate ``synco pretrain`` process on the recipes of one dataset
(``configs/pretrain/<dataset>/{moco_v2,mochi,synco}.yaml``: small CNN, K 4096, N 256, counts
64/64/64/16/16/16) with a smaller budget so that the whole benchmark fits a few CPU hours; runs that
already finished are skipped, so the script can be stopped and started again.

    .venv/bin/python benchmarks/quality.py --out reports/quality_cifar10 --seeds 0 1 2 --ablation-seeds 0 1 \
        --subset 20000 --epochs 3
    .venv/bin/python benchmarks/quality.py --dataset fashion_mnist --out reports/quality_fashion_mnist \
        --seeds 0 1 2 --subset 20000 --epochs 3 --no-ablation
    .venv/bin/python benchmarks/quality.py --out reports/label_aware_cifar10 --seeds 0 1 2 --subset 20000 \
        --epochs 3 --no-ablation --no-finetune --methods simclr hcl scl supcon hscl hscl_tau

``--methods`` names recipes of ``configs/pretrain/<dataset>/`` (a recipe is a file name, e.g. hscl_tau).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from synco.negatives import COUNT_KEYS as STRATEGIES

# The repository's data sets sit beside it (as scripts/*.sh set it), unless SYNCO_DATA_ROOT says otherwise.
os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def finished(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and any(json.loads(line).get("finished") for line in metrics.read_text().splitlines() if line)


def synco(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "synco.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "fashion_mnist"],
                        help="recipes under configs/pretrain/<dataset>/")
    parser.add_argument("--out", default=None, help="default: reports/quality_<dataset>")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--subset", type=int, default=20000, help="pretraining images (class-balanced prefix)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--linear-epochs", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=["moco_v2", "mochi", "synco"],
                        help="recipe names under configs/pretrain/<dataset>/")
    parser.add_argument("--no-ablation", action="store_true", help="skip the one-strategy-alone runs")
    parser.add_argument("--no-finetune", action="store_true",
                        help="skip the 1 %% fine-tuning of the method runs (the ablation runs never get it)")
    parser.add_argument("--ablation-seeds", type=int, nargs="+", default=None,
                        help="seeds of the one-strategy-alone runs (default: the first of --seeds)")
    args = parser.parse_args()
    out = Path(args.out or f"reports/quality_{args.dataset}")
    recipes = Path("configs/pretrain") / args.dataset
    common = [f"data.subset={args.subset}", f"train.epochs={args.epochs}", f"eval.train_subset={args.subset}",
              "eval.test_subset=5000", "eval.baselines=false", "train.progress=false"]
    warmup = ["method.negatives.warmup_epochs=1"]  # MoCHI and SynCo: one warm-up epoch of the short budget
    plan = []
    for seed in args.seeds:
        for method in args.methods:
            extra = [f"train.seed={seed}", *(warmup if method.startswith(("mochi", "synco")) else [])]
            plan.append((f"{method}_s{seed}", str(recipes / f"{method}.yaml"), extra))
    if not args.no_ablation:
        for seed in args.ablation_seeds or args.seeds[:1]:
            for keep in STRATEGIES:
                off = [f"method.negatives.{name}=0" for name in STRATEGIES if name != keep]
                plan.append((f"synco_only_{keep[4:]}_s{seed}", str(recipes / "synco.yaml"),
                             [f"train.seed={seed}", *warmup, *off]))
    for name, recipe, extra in plan:
        run_dir = out / "runs" / name
        started = time.time()
        if not finished(run_dir):
            synco("pretrain", recipe, *common, *extra, f"run_dir={run_dir}", "--quiet")
        if not (run_dir / "linear" / "metrics.jsonl").is_file():
            synco("linear", str(run_dir), "--recipe", "configs/linear/small.yaml",
                  f"linear.epochs={args.linear_epochs}", "linear.seeds=[0]", "--quiet")
        if not args.no_finetune and "_only_" not in name and not (run_dir / "finetune_1pct" / "metrics.jsonl").is_file():
            synco("finetune", str(run_dir), "--recipe", "configs/finetune/small_1pct.yaml", "finetune.seeds=[0]")
        print(f"{name}: {time.time() - started:.0f} s", flush=True)
    synco("report", *[str(out / "runs" / name) for name, _, _ in plan], "--out", str(out))


if __name__ == "__main__":
    main()
