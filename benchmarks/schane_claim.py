"""CE + SCHaNe against CE when fine-tuning, under docs/reproduction.md: settings chosen on validation, 3 seeds.

    .venv/bin/python benchmarks/schane_claim.py              # run what is missing, then write the report
    .venv/bin/python benchmarks/schane_claim.py --report     # only the report, from the finished runs
    .venv/bin/python benchmarks/schane_claim.py --commit     # git-commit the folder after every finished run

One encoder is fine-tuned at four label budgets: the SynCo claim's 30-epoch seed-0 run (ENCODER). Training
checkpoints are not committed, so the first time, where that run has none on this machine, the runner trains the
same cell (recipe, budget, seed 0) into ``reports/claims/schane_cifar10/encoder`` (resumable, about 25-30 minutes on
2 cores). Either way it then pins the encoder: a weights-only copy, ``reports/claims/schane_cifar10/encoder.ckpt``
(committed, a few MB), which every run fine-tunes, so that runs made on other machines or in later sessions start
from the same weights.
Per budget and arm, the setting with the best validation top-1 on seed 0 is chosen (the learning rate; for SCHaNe
also lambda), then seeds 1 and 2 run at it (seed s: label subset s, head and crops s). Every run is ``run_finetune``
into ``reports/claims/schane_cifar10/runs/<budget>/<cell>`` (its config and metrics, committed); a finished run is
skipped, an interrupted one runs again. The 1,000 validation images (100 per class, ``finetune.val_seed=0``) are
held out before any subset is drawn, and the test split is read once per run, at the best validation epoch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from claims import CLAIMS, commit_folders, finished, pretrain_cell, verdict  # shared with benchmarks/claims.py

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SYNCO_DATA_ROOT", str(ROOT.parent / "shared" / "datasets"))
ENCODER = ROOT / "reports" / "claims" / "synco_cifar10" / "runs" / "synco_s0"
FOLDER = ROOT / "reports" / "claims" / "schane_cifar10"
#: Where the runner trains ENCODER's cell again when ENCODER has no checkpoint on this machine.
OWN_ENCODER = FOLDER / "encoder"
#: The weights-only copy of the encoder that every run fine-tunes (committed).
PINNED_ENCODER = FOLDER / "encoder.ckpt"
LRS = (0.01, 0.03, 0.1, 0.3)
#: Label budgets: overrides of every run. k-shot and 10 % feed two views of every image (the other view is the
#: only positive SupCon-style terms have at 1-shot); with all labels one view (two for the SimCLR control).
BUDGETS: dict[str, list[str]] = {
    "1shot": ["finetune.shots=1", "finetune.epochs=100", "finetune.patience=20", "finetune.views=2"],
    "5shot": ["finetune.shots=5", "finetune.epochs=100", "finetune.patience=20", "finetune.views=2"],
    "10pct": ["finetune.fraction=0.1", "finetune.epochs=30", "finetune.patience=5", "finetune.views=2"],
    "all": ["finetune.fraction=1.0", "finetune.epochs=10", "finetune.patience=3"],
}
#: The all-label budget searches three rates (each of its runs costs as much as the k-shot grid together).
BUDGET_LRS = {"all": (0.03, 0.1, 0.3)}
#: Arms: name -> candidate settings (selected among on validation, with the learning rate). Under
#: (1 - lambda) CE + lambda L the classifier takes CE's step: classifier_lr = lr / (1 - lambda) (the measured cause
#: of the gap, reports/claims/schane_gap/report.md).
ARMS: dict[str, list[dict]] = {
    "ce": [{"finetune.loss": "ce"}],
    "schane": [{"finetune.loss": "schane", "finetune.contrastive_weight": w} for w in (0.5, 0.9)],
    "ce_simclr": [{"finetune.loss": "simclr", "finetune.contrastive_weight": 0.5, "finetune.views": 2}],
}
COMMON = ["finetune.val_images=1000", "finetune.val_seed=0", "finetune.batch_size=256"]
SEEDS = (0, 1, 2)
#: The budgets the claim's "most in few-shot" names.
FEW_SHOT = ("1shot", "5shot")


def cell_name(arm: str, setting: dict, lr: float, seed: int) -> str:
    weight = setting.get("finetune.contrastive_weight")
    return f"{arm}" + (f"_lam{weight:g}" if weight is not None else "") + f"_lr{lr:g}_s{seed}"


def overrides(budget: str, setting: dict, lr: float, seed: int) -> list[str]:
    out = [*COMMON, *BUDGETS[budget], *(f"{k}={v}" for k, v in setting.items()), f"finetune.lr={lr}",
           f"finetune.subset_seed={seed}", f"finetune.seeds=[{seed}]"]
    weight = setting.get("finetune.contrastive_weight")
    if weight is not None:
        out.append(f"finetune.classifier_lr={lr / (1 - weight):g}")
    return out


def summary(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    seeds = [r for r in records if "seed" in r]
    done = [r for r in records if "finetune/top1_mean" in r]
    return {**seeds[0], **done[0]} if done and seeds else None


def encoder_at_hand(encoder: Path, named: bool) -> Path:
    """The encoder to fine-tune: PINNED_ENCODER where it exists (the default only); else ``encoder`` when its
    checkpoint is here, else (the default only) OWN_ENCODER, trained as the SynCo claim's synco cell with seed 0 (or
    continued from its last checkpoint); the default is then pinned (``pin``). A named encoder without a checkpoint
    ends the runner with one line."""
    if not named and PINNED_ENCODER.is_file():
        return PINNED_ENCODER
    if (encoder / "checkpoints").is_dir():
        return encoder if named else pin(encoder)
    if named:
        sys.exit(f"schane_claim: the encoder {encoder} has no checkpoint on this machine (checkpoints are not "
                 "committed); name a pretraining run that has one, or leave --encoder out to train the default")
    if (OWN_ENCODER / "checkpoints").is_dir():
        if finished(OWN_ENCODER):
            return pin(OWN_ENCODER)
    elif (OWN_ENCODER / "metrics.jsonl").exists():
        (OWN_ENCODER / "metrics.jsonl").unlink()  # trained on another machine: train it again here
    print(f"schane_claim: {encoder} has no checkpoint here; training the same cell into {OWN_ENCODER}", flush=True)
    claim = CLAIMS["synco"]
    pretrain_cell(claim, claim.arm("synco"), 0, OWN_ENCODER)
    return pin(OWN_ENCODER)


def pin(run_dir: Path) -> Path:
    """PINNED_ENCODER, written from ``run_dir``'s last checkpoint (weights, configuration, normalisation)."""
    from synco.engine.checkpoint import write_weights_only

    return write_weights_only(run_dir / "checkpoints" / "last.ckpt", PINNED_ENCODER)


def run(budget: str, arm: str, setting: dict, lr: float, seed: int, encoder: Path = ENCODER) -> dict:
    from synco.eval.protocols.finetune import run_finetune

    out = FOLDER / "runs" / budget / cell_name(arm, setting, lr, seed)
    if summary(out) is None:
        if (out / "metrics.jsonl").exists():  # interrupted: the run starts again
            (out / "metrics.jsonl").unlink()
        run_finetune(encoder, overrides=[*overrides(budget, setting, lr, seed), f"finetune.out_dir={out}"])
    return summary(out)


def selected(budget: str, arm: str) -> tuple[dict, float] | None:
    """The arm's (setting, lr) with the best seed-0 validation top-1 (the first in grid order on ties), or None
    while its grid is unfinished."""
    best = None
    for setting in ARMS[arm]:
        for lr in BUDGET_LRS.get(budget, LRS):
            result = summary(FOLDER / "runs" / budget / cell_name(arm, setting, lr, 0))
            if result is None:
                return None
            if best is None or result["finetune/val_top1"] > best[0]:
                best = (result["finetune/val_top1"], setting, lr)
    return best[1], best[2]


def cells() -> list[tuple[str, str, dict, float, int]]:
    """Every run in order, budget by budget (cheapest first): the budget's seed-0 grid, then seeds 1-2 at its
    choices (known once the budget's grid has run), so a cheap budget's verdict comes before the next budget runs."""
    out = []
    for budget in BUDGETS:
        out += [(budget, a, s, lr, 0) for a in ARMS for s in ARMS[a] for lr in BUDGET_LRS.get(budget, LRS)]
        for arm in ARMS:
            choice = selected(budget, arm)
            if choice is not None:
                out += [(budget, arm, choice[0], choice[1], seed) for seed in SEEDS[1:]]
    return out


def most_in_few_shot(differences: dict[str, float]) -> bool | None:
    """docs/reproduction.md's reading of "most in few-shot": every k-shot difference (CE + SCHaNe minus CE, test
    top-1 means) exceeds every difference at the larger budgets. None while some budget has no difference yet."""
    if set(differences) != set(BUDGETS):
        return None
    larger = [differences[b] for b in BUDGETS if b not in FEW_SHOT]
    return min(differences[b] for b in FEW_SHOT) > max(larger)


def encoder_fingerprint() -> str:
    """``; encoder.ckpt's sha256 begins ...`` (16 hex digits), or nothing while PINNED_ENCODER does not exist."""
    if not PINNED_ENCODER.is_file():
        return ""
    return f"; encoder.ckpt's sha256 begins {hashlib.sha256(PINNED_ENCODER.read_bytes()).hexdigest()[:16]}"


def report() -> str:
    lines = ["# CE + SCHaNe against CE when fine-tuning (CIFAR-10, small CNN, the SynCo claim's 30-epoch encoder)",
             "", "Protocol and decision rule: docs/reproduction.md. Command: `.venv/bin/python benchmarks/"
             "schane_claim.py`. Encoder: `encoder.ckpt` (committed), the weights of the SynCo claim's seed-0 run, or "
             "of the same cell trained again into `encoder/` where that run's checkpoint was not at hand, unless "
             "`--encoder` named another; each run's config.yaml names the pretraining run as `run_dir`"
             + encoder_fingerprint() + ". Validation: 1,000 held-out training images; test: the 10,000 test images "
             "at the best validation epoch.", "",
             "## Selection on validation (seed 0): validation top-1 %", ""]
    for budget in BUDGETS:
        lrs = BUDGET_LRS.get(budget, LRS)
        lines += [f"**{budget}** (`{' '.join(BUDGETS[budget])}`)", "",
                  "| arm | setting | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen |",
                  "|---|---|" + "---|" * len(lrs) + "---|"]
        for arm, settings in ARMS.items():
            choice = selected(budget, arm)
            for setting in settings:
                row = []
                for lr in lrs:
                    result = summary(FOLDER / "runs" / budget / cell_name(arm, setting, lr, 0))
                    row.append("pending" if result is None else
                               f"{result['finetune/val_top1']:.2f} (ep {result['finetune/best_epoch']})")
                chosen = "-" if choice is None or choice[0] != setting else f"lr {choice[1]:g}"
                shown = " ".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items())
                lines.append(f"| {arm} | {shown} | " + " | ".join(row) + f" | {chosen} |")
        lines.append("")
    lines += ["## Test top-1 % at the chosen settings", "",
              "| budget | arm | chosen | seed 0 | seed 1 | seed 2 | mean +- sd |", "|---|---|---|---|---|---|---|"]
    results: dict[tuple[str, str], list[float]] = {}
    for budget in BUDGETS:
        for arm in ARMS:
            choice = selected(budget, arm)
            if choice is None:
                lines.append(f"| {budget} | {arm} | pending | | | | |")
                continue
            tops = [summary(FOLDER / "runs" / budget / cell_name(arm, choice[0], choice[1], s)) for s in SEEDS]
            values = [t["finetune/top1"] for t in tops if t is not None]
            results[budget, arm] = values if len(values) == len(SEEDS) else []
            shown = " ".join(f"{k.split('.')[-1]}={v}" for k, v in choice[0].items()) + f" lr={choice[1]:g}"
            cells_ = [f"{t['finetune/top1']:.2f}" if t is not None else "pending" for t in tops]
            stats = (f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}" if len(values) == len(SEEDS)
                     else "-")
            lines.append(f"| {budget} | {arm} | {shown} | " + " | ".join(cells_) + f" | {stats} |")
    lines += ["", "| budget | claim | difference | band (2 sd) | verdict |", "|---|---|---|---|---|"]
    differences: dict[str, float] = {}
    for budget in BUDGETS:
        for arm, claim in (("schane", "CE + SCHaNe > CE"), ("ce_simclr", "CE + SimCLR > CE (control)")):
            a, b = results.get((budget, arm)), results.get((budget, "ce"))
            if a and b:
                v, d, band = verdict(a, b)
                lines.append(f"| {budget} | {claim} | {d:+.2f} | {band:.2f} | **{v}** |")
                if arm == "schane":
                    differences[budget] = d
            else:
                lines.append(f"| {budget} | {claim} | - | - | pending |")
    most = most_in_few_shot(differences)
    listed = ", ".join(f"{b} {d:+.2f}" for b, d in differences.items())
    lines += ["", "Most in few-shot (every k-shot difference of CE + SCHaNe over CE above every 10 % and all-label "
              "one; differences of means, not tested against the bands): "
              + ("pending" if most is None else ("yes" if most else "no")) + (f" ({listed})." if listed else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=None,
                        help="the pretraining run to fine-tune (default: schane_cifar10/encoder.ckpt, pinned from the "
                             "SynCo claim's seed-0 run, or from the same cell trained into schane_cifar10/encoder "
                             "where that run has no checkpoint here)")
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument("--commit", action="store_true", help="git-commit the folder after every finished run")
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    if not args.report:
        encoder = None  # found or trained once some run is left to do
        while True:  # a budget's finals exist only once its grid is done: recompute the list after every run
            todo = [c for c in cells() if summary(FOLDER / "runs" / c[0] / cell_name(c[1], c[2], c[3], c[4])) is None]
            if not todo:
                break
            budget, arm, setting, lr, seed = todo[0]
            name = cell_name(arm, setting, lr, seed)
            started = time.time()
            print(f"schane_claim: {budget} {name} ({len(todo)} runs left, finals not yet counted)", flush=True)
            if encoder is None:
                encoder = encoder_at_hand(args.encoder or ENCODER, named=args.encoder is not None)
                if args.commit:
                    commit_folders([str(FOLDER)], "claims schane: the encoder is at hand")
            run(budget, arm, setting, lr, seed, encoder)
            print(f"schane_claim: {budget} {name} done in {time.time() - started:.0f} s", flush=True)
            (FOLDER / "report.md").write_text(report())
            if args.commit:
                commit_folders([str(FOLDER)], f"claims schane: {budget} {name} finished")
    (FOLDER / "report.md").write_text(report())
    print(report())


if __name__ == "__main__":
    main()
