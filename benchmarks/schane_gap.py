"""Why CE + SCHaNe fine-tuning trails CE: the classifier's learning rate, measured (docs/reproduction.md).

    .venv/bin/python benchmarks/schane_gap.py RUN_DIR            # run the missing arms, then write the report
    .venv/bin/python benchmarks/schane_gap.py RUN_DIR --report   # only the report, from the finished arms

Under ``(1 - lambda) CE + lambda SCHaNe`` the linear classifier learns from the CE term alone, so at lambda = 0.9
its gradient, and with one learning rate its step, is a tenth of CE's. Four arms on one pretrained encoder,
1 % of the CIFAR-10 labels, the fine-tuning defaults otherwise, seeds 0, 1, 2:

    ce                 CE
    ce_slow_head       CE with the classifier at lr x (1 - lambda): the step SCHaNe's classifier takes
    schane             CE + SCHaNe, lambda 0.9, one learning rate
    schane_fast_head   CE + SCHaNe, lambda 0.9, classifier at lr / (1 - lambda): CE's step back

The classifier's rate explains the gap if slowing CE's classifier costs about what SCHaNe costs and restoring
SCHaNe's classifier rate recovers CE's accuracy, each judged against 2 standard deviations of the seeds.
Every arm writes RUN_DIR/schane_gap/<arm>/metrics.jsonl; a finished arm is skipped; the report goes to
reports/claims/schane_gap/report.md with the arms' per-seed results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SYNCO_DATA_ROOT", str(ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "reports" / "claims" / "schane_gap"
LR, WEIGHT = 0.05, 0.9  # the fine-tuning default lr at batch 256; SCHaNe's recommended lambda
COMMON = ["finetune.fraction=0.01", "finetune.subset_seed=0", "finetune.seeds=[0,1,2]", f"finetune.lr={LR}",
          "finetune.batch_size=256"]
ARMS = {
    "ce": ["finetune.loss=ce"],
    "ce_slow_head": ["finetune.loss=ce", f"finetune.classifier_lr={LR * (1 - WEIGHT):g}"],
    "schane": ["finetune.loss=schane", f"finetune.contrastive_weight={WEIGHT}"],
    "schane_fast_head": ["finetune.loss=schane", f"finetune.contrastive_weight={WEIGHT}",
                         f"finetune.classifier_lr={LR / (1 - WEIGHT):g}"],
}


def machine() -> str:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else "?"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def per_seed(metrics: Path) -> list[float]:
    if not metrics.is_file():
        return []
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not any("finetune/top1_mean" in r for r in rows):
        return []  # unfinished
    return [r["finetune/top1"] for r in rows if "seed" in r]


def band(a: list[float], b: list[float]) -> float:
    return 2 * max(statistics.stdev(a), statistics.stdev(b))


def report(run_dir: Path) -> str:
    results = {arm: per_seed(run_dir / "schane_gap" / arm / "metrics.jsonl") for arm in ARMS}
    lines = ["# Why CE + SCHaNe trails CE: the classifier's learning rate", "",
             f"Encoder: `{run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir}`. Protocol: "
             "docs/reproduction.md (SCHaNe, cause of the gap). Command: "
             f"`.venv/bin/python benchmarks/schane_gap.py {run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir}`.",
             f"Common settings: {' '.join(COMMON)}.", f"Written {datetime.date.today()} on {machine()}.", "",
             "| arm | settings | top-1 % per seed | mean +- sd |", "|---|---|---|---|"]
    for arm, settings in ARMS.items():
        got = results[arm]
        shown = ", ".join(f"{v:.2f}" for v in got) or "pending"
        stats = f"{statistics.mean(got):.2f} +- {statistics.stdev(got):.2f}" if len(got) > 1 else "-"
        lines.append(f"| {arm} | {' '.join(settings)} | {shown} | {stats} |")
    lines.append("")
    if all(len(results[a]) > 1 for a in ARMS):
        mean = {a: statistics.mean(v) for a, v in results.items()}
        slow_cost, schane_cost = mean["ce"] - mean["ce_slow_head"], mean["ce"] - mean["schane"]
        recovered = mean["schane_fast_head"] - mean["schane"]
        same_cost = abs(mean["ce_slow_head"] - mean["schane"]) <= band(results["ce_slow_head"], results["schane"])
        back = mean["schane_fast_head"] >= mean["ce"] - band(results["schane_fast_head"], results["ce"])
        lines += [
            f"- CE minus CE with the slow classifier: {slow_cost:+.2f} points; CE minus CE + SCHaNe: "
            f"{schane_cost:+.2f} points; the two costs {'agree' if same_cost else 'differ'} within 2 sd "
            f"({band(results['ce_slow_head'], results['schane']):.2f}).",
            f"- SCHaNe with the classifier at CE's step gains {recovered:+.2f} points and "
            f"{'reaches' if back else 'stays below'} CE within 2 sd ({band(results['schane_fast_head'], results['ce']):.2f}).",
            f"- Verdict: the classifier's learning rate {'explains' if same_cost and back else 'does not fully explain'}"
            " the gap.",
        ]
    else:
        lines.append("Verdict: pending (arms unfinished).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a pretraining run with a checkpoint (the encoder)")
    parser.add_argument("--report", action="store_true", help="only write the report")
    args = parser.parse_args()
    run_dir = args.run_dir.resolve()
    if not args.report:
        from synco.eval.protocols.finetune import run_finetune

        for arm, settings in ARMS.items():
            out = run_dir / "schane_gap" / arm
            if per_seed(out / "metrics.jsonl"):
                continue
            if (out / "metrics.jsonl").exists():  # an arm stopped half-way: its seeds run again
                (out / "metrics.jsonl").unlink()
            print(f"schane_gap: {arm}", flush=True)
            run_finetune(run_dir, overrides=[*COMMON, *settings, f"finetune.out_dir={out}"])
    OUT.mkdir(parents=True, exist_ok=True)
    for arm in ARMS:  # the arms' records beside the report (the encoder's run directory is not committed)
        source = run_dir / "schane_gap" / arm / "metrics.jsonl"
        if source.is_file():
            (OUT / f"{arm}.jsonl").write_text(source.read_text())
    (OUT / "report.md").write_text(report(run_dir))
    print((OUT / "report.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
