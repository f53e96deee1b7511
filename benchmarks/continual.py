"""Continual SSL side by side: plain fine-tuning vs CaSSLe vs PNR on the MoCo-v2+ base, several seeds, and the
joint (offline) upper bound with the same number of image passes; ``synco report`` tabulates and draws them.

Each stream is ``synco continual RECIPE continual.regularizer=R train.seed=S``; the joint run is ``synco
pretrain`` of the same recipe on all images for ``tasks x epochs-per-task / tasks`` = the same passes, followed
by the same all-class linear probe. Finished runs are skipped.

    .venv/bin/python benchmarks/continual.py --out reports/continual_cifar10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def finished(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and any(json.loads(line).get("finished") for line in metrics.read_text().splitlines()
                                     if line and json.loads(line).get("task", "all") in (None, "all"))


def synco(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "synco.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="configs/continual/cifar10_5tasks_mocov2plus.yaml")
    parser.add_argument("--out", default="reports/continual_cifar10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regularizers", nargs="+", default=["none", "cassle", "pnr"])
    parser.add_argument("--linear-epochs", type=int, default=10)
    parser.add_argument("--no-joint", action="store_true")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the recipe (every run)")
    args = parser.parse_args()
    out = Path(args.out) / "runs"
    common = ["train.progress=false", f"continual.linear_epochs={args.linear_epochs}", "eval.test_subset=5000",
              *args.overrides]
    names = []
    for seed in args.seeds:
        for regularizer in args.regularizers:
            name = {"none": "finetune", "cassle": "cassle", "pnr": "pnr"}[regularizer] + f"_s{seed}"
            run_dir = out / name
            started = time.time()
            if not finished(run_dir):
                synco("continual", args.recipe, f"continual.regularizer={regularizer}", f"train.seed={seed}",
                      f"run_dir={run_dir}", *common, *(["--resume"] if run_dir.exists() else []))
            names.append(name)
            print(f"{name}: {time.time() - started:.0f} s", flush=True)
        if not args.no_joint:  # the upper bound: all images at once, as many image passes as the stream
            run_dir = out / f"joint_s{seed}"
            started = time.time()
            if not (run_dir / "linear" / "metrics.jsonl").is_file():
                if not finished(run_dir):
                    synco("pretrain", args.recipe, f"train.seed={seed}", f"run_dir={run_dir}", "train.progress=false",
                          "eval.test_subset=5000", *args.overrides, "--resume" if run_dir.exists() else "--quiet")
                synco("linear", str(run_dir), "--recipe", "configs/linear/small.yaml",
                      f"linear.epochs={args.linear_epochs}", "linear.seeds=[0]", "--quiet")
            names.append(f"joint_s{seed}")
            print(f"joint_s{seed}: {time.time() - started:.0f} s", flush=True)
    synco("report", *[str(out / name) for name in names], "--out", str(Path(args.out)))


if __name__ == "__main__":
    main()
