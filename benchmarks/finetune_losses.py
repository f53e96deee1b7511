"""Fine-tuning objectives side by side: CE vs CE + SupCon vs CE + SCHaNe on one pretrained encoder, at 1 %,
10 % and all of the labels and in k-shot, several seeds each; ``synco report`` tabulates them.

Each (objective, subset) pair is one ``synco finetune`` call with ``finetune.seeds``; results go to
``RUN/finetune_<subset>[_<loss>]/metrics.jsonl`` (mean +- std over the seeds in its last line). The budgets
are scaled to a few CPU hours (the small CNN on CIFAR-10): the epochs per subset below; lambda = 0.9,
t = 0.1, SCHaNe's weights from the anchor (the defaults of ``finetune.*``). Finished pairs are skipped.

    .venv/bin/python benchmarks/finetune_losses.py runs/cifar10_synco --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))

#: subset name -> (settings, epochs): 1 % and 5-shot with SimCLR's 60 epochs; 10 % (5) and all labels (1) cut to fit a CPU.
SUBSETS = {
    "1pct": (["finetune.fraction=0.01"], 60),
    "10pct": (["finetune.fraction=0.1"], 5),
    "100pct": (["finetune.fraction=1.0"], 1),
    "5shot": (["finetune.shots=5", "finetune.batch_size=50"], 60),
}
LOSSES = ("ce", "supcon", "schane")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a pretraining run directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subsets", nargs="+", default=list(SUBSETS), choices=list(SUBSETS))
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args()
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    for subset in args.subsets:
        settings, epochs = SUBSETS[subset]
        for loss in args.losses:
            out = Path(args.run) / (f"finetune_{subset}" + ("" if loss == "ce" else f"_{loss}"))
            if (out / "metrics.jsonl").is_file():
                continue
            started = time.time()
            subprocess.run([sys.executable, "-m", "synco.cli", "finetune", args.run, *settings,
                            f"finetune.epochs={epochs}", f"finetune.loss={loss}", f"finetune.seeds={seeds}",
                            "finetune.batch_size=256" if "shots" not in settings[0] else "finetune.batch_size=50"],
                           check=True)
            print(f"{out.name}: {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
