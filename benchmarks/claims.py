"""The papers' claims under the protocols of docs/reproduction.md: one command per table, resumable.

    .venv/bin/python benchmarks/claims.py synco            # SynCo vs MoCo-v2 vs MoCHI, 30 epochs, 3 seeds
    .venv/bin/python benchmarks/claims.py simclr_synthesis # SimCLR + synthetic negatives vs SimCLR
    .venv/bin/python benchmarks/claims.py synco_stop       # SynCo with synthesis stopped at epoch 10 vs not
    .venv/bin/python benchmarks/claims.py hscl             # H-SCL(beta), H-SCL(tau) vs SCL; HCL vs SimCLR
    .venv/bin/python benchmarks/claims.py synco --report   # only regenerate the report from finished cells
    .venv/bin/python benchmarks/claims.py synco --commit   # git-commit the claim's folder after every cell

Every cell is a pretraining run plus its evaluations under ``reports/claims/<claim>/runs/<cell>``. A finished
cell is skipped; an unfinished one continues from its last checkpoint (``--resume``, which also starts a run
that has none). Ctrl-C or SIGTERM stop the current run after its step with a checkpoint, so the runner can be
stopped at any time and started again with the same command. ``report.md`` is regenerated after every cell
from whatever has finished, with the verdict once every seed of both arms is in. Checkpoints are not
committed (``.gitignore``); an unfinished cell started on another machine starts again there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SYNCO_DATA_ROOT", str(ROOT.parent / "shared" / "datasets"))


@dataclass
class Arm:
    """One arm of a claim: a shipped recipe with overrides; ``runs`` names another claim's folder whose runs of the
    same recipe, budget and seeds this arm shares (a run is trained once)."""

    name: str
    recipe: str
    overrides: list[str] = field(default_factory=list)
    runs: str | None = None


@dataclass
class Claim:
    """A table of docs/reproduction.md: arms x seeds, each cell one pretraining run."""

    name: str
    folder: str
    arms: list[Arm]
    comparisons: list[tuple[str, str]]  # (expected better, expected worse), as the claim states
    pretrain: list[str]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # (expected harder, baseline): a proxy task claimed harder (lower last-epoch proxy accuracy, higher loss)
    harder: list[tuple[str, str]] = field(default_factory=list)
    linear: list[str] = field(default_factory=lambda: ["--recipe", "configs/linear/small.yaml", "linear.seeds=[0]"])

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def run_dir(self, arm: Arm, seed: int) -> Path:
        return ROOT / (arm.runs or self.folder) / "runs" / f"{arm.name}_s{seed}"


THIRTY_EPOCHS = ["train.epochs=30", "trainer.compile=true", "eval.baselines=false", "train.progress=false"]
CLAIMS = {
    "synco": Claim(
        name="SynCo vs MoCo-v2 vs MoCHI (CIFAR-10, small CNN, 30 epochs)",
        folder="reports/claims/synco_cifar10",
        arms=[Arm("synco", "cifar10/synco"), Arm("moco_v2", "cifar10/moco_v2"), Arm("mochi", "cifar10/mochi")],
        comparisons=[("synco", "moco_v2"), ("moco_v2", "mochi"), ("synco", "mochi")],
        harder=[("synco", "moco_v2")],
        pretrain=THIRTY_EPOCHS,
    ),
    "simclr_synthesis": Claim(
        name="SimCLR + synthetic negatives vs SimCLR (CIFAR-10, small CNN, 30 epochs)",
        folder="reports/claims/simclr_synthesis_cifar10",
        arms=[Arm("simclr_synco", "cifar10/simclr_synco"), Arm("simclr", "cifar10/simclr")],
        comparisons=[("simclr_synco", "simclr")],
        pretrain=THIRTY_EPOCHS,
    ),
    "synco_stop": Claim(
        name="SynCo with synthesis stopped at epoch 10 vs to the end (CIFAR-10, small CNN, 30 epochs)",
        folder="reports/claims/synco_stop_cifar10",
        arms=[Arm("synco_stop10", "cifar10/synco", ["method.negatives.stop_epoch=10"]),
              Arm("synco", "cifar10/synco", runs="reports/claims/synco_cifar10")],
        comparisons=[("synco_stop10", "synco")],
        pretrain=THIRTY_EPOCHS,
    ),
    "hscl": Claim(
        name="H-SCL(beta) and H-SCL(tau) vs SCL, HCL vs SimCLR (CIFAR-10, small CNN, 30 epochs)",
        folder="reports/claims/hscl_cifar10",
        arms=[Arm("scl", "cifar10/scl"), Arm("hscl", "cifar10/hscl"), Arm("hscl_tau", "cifar10/hscl_tau"),
              Arm("hcl", "cifar10/hcl"),
              Arm("simclr", "cifar10/simclr", runs="reports/claims/simclr_synthesis_cifar10")],
        comparisons=[("hscl", "scl"), ("hscl_tau", "scl"), ("hcl", "simclr")],
        pretrain=THIRTY_EPOCHS,
    ),
}


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def finished(run_dir: Path) -> bool:
    return any(r.get("finished") for r in records(run_dir / "metrics.jsonl"))


def synco(*args: str) -> None:
    """``synco ARGS`` in a child process; a child that stops (a stop signal, an error it has named) ends the runner
    with one line and the child's exit code, never a traceback. The other claim runners use it too."""
    done = subprocess.run([sys.executable, "-m", "synco.cli", *args], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"claims: `synco {args[0]}` stopped with exit code {done.returncode}; run the same command again "
                 "to continue from the last checkpoint")


def pretrain_cell(claim: Claim, arm: Arm, seed: int, run_dir: Path) -> None:
    """Train (or continue) one cell's pretraining run into ``run_dir``; schane_claim.py uses it for its encoder."""
    synco("pretrain", arm.recipe, *claim.pretrain, *arm.overrides, f"train.seed={seed}", f"run_dir={run_dir}",
          "--resume", "--quiet")


def run_cell(claim: Claim, arm: Arm, seed: int) -> Path:
    run_dir = claim.run_dir(arm, seed)
    if not finished(run_dir):
        pretrain_cell(claim, arm, seed, run_dir)
    if not (run_dir / "linear" / "metrics.jsonl").is_file():
        synco("linear", str(run_dir), *claim.linear, "--quiet")
    return run_dir


def cell_result(run_dir: Path) -> dict | None:
    """linear top-1, kNN top-1 and the last epoch's proxy accuracy and loss of a finished cell (None otherwise)."""
    linear = records(run_dir / "linear" / "metrics.jsonl")
    if not finished(run_dir) or not linear:
        return None
    merged: dict = {}
    for record in records(run_dir / "metrics.jsonl"):
        merged.update(record)
    return {"linear": linear[-1].get("linear/top1_mean", linear[-1].get("linear/top1")), "knn": merged["eval/knn_top1"],
            "proxy_acc": merged.get("analysis/proxy_acc"), "loss": merged.get("train/loss")}


def verdict(better: list[float], worse: list[float]) -> tuple[str, float, float]:
    """(verdict, difference of means, band = 2 x the larger seed standard deviation) under docs/reproduction.md;
    ``better`` is the arm the claim expects ahead. The other claim runners use it too."""
    difference = statistics.mean(better) - statistics.mean(worse)
    band = 2 * max(statistics.stdev(better), statistics.stdev(worse))
    if abs(difference) <= band:
        return "not shown", difference, band
    return ("shown" if difference > 0 else "reversed"), difference, band


def report(claim: Claim) -> str:
    results = {arm.name: {s: cell_result(claim.run_dir(arm, s)) for s in claim.seeds} for arm in claim.arms}
    lines = [f"# {claim.name}", "",
             "Protocol and decision rule: docs/reproduction.md. Command: "
             f"`.venv/bin/python benchmarks/claims.py {next(k for k, v in CLAIMS.items() if v is claim)}`.", "",
             "| arm | seed | linear top-1 % | kNN top-1 % | proxy acc (last epoch) | loss (last epoch) |",
             "|---|---|---|---|---|---|"]
    for arm in (a.name for a in claim.arms):
        for seed, r in results[arm].items():
            if r is None:
                lines.append(f"| {arm} | {seed} | pending | | | |")
            else:
                proxy = "-" if r["proxy_acc"] is None else f"{r['proxy_acc']:.3f}"
                lines.append(f"| {arm} | {seed} | {r['linear']:.2f} | {r['knn']:.2f} | {proxy} | {r['loss']:.3f} |")
    lines += ["", "| arm | seeds done | linear mean +- sd | kNN mean +- sd |", "|---|---|---|---|"]
    for arm in (a.name for a in claim.arms):
        done = [r for r in results[arm].values() if r is not None]
        if len(done) >= 2:
            lin, knn = [r["linear"] for r in done], [r["knn"] for r in done]
            lines.append(f"| {arm} | {len(done)} | {statistics.mean(lin):.2f} +- {statistics.stdev(lin):.2f} | "
                         f"{statistics.mean(knn):.2f} +- {statistics.stdev(knn):.2f} |")
        else:
            lines.append(f"| {arm} | {len(done)} | - | - |")
    lines += ["", "| claim | metric | difference | band (2 sd) | verdict |", "|---|---|---|---|---|"]
    for better, worse in claim.comparisons:
        a = [r for r in results[better].values() if r is not None]
        b = [r for r in results[worse].values() if r is not None]
        for metric in ("linear", "knn"):
            if len(a) == len(b) == len(claim.seeds):
                v, d, band = verdict([r[metric] for r in a], [r[metric] for r in b])
                lines.append(f"| {better} > {worse} | {metric} | {d:+.2f} | {band:.2f} | **{v}** |")
            else:
                lines.append(f"| {better} > {worse} | {metric} | - | - | pending ({len(a)} and {len(b)} of "
                             f"{len(claim.seeds)} seeds) |")
    for harder, baseline in claim.harder:
        a = [r for r in results[harder].values() if r is not None]
        b = [r for r in results[baseline].values() if r is not None]
        if len(a) == len(b) == len(claim.seeds) and all(r["proxy_acc"] is not None for r in a + b):
            # Harder = lower proxy accuracy and higher loss: the accuracy enters negated.
            v, d, band = verdict([-r["proxy_acc"] for r in a], [-r["proxy_acc"] for r in b])
            lines.append(f"| {harder}'s proxy task harder than {baseline}'s | proxy accuracy (lower) | {-d:+.3f} | "
                         f"{band:.3f} | **{v}** |")
            v, d, band = verdict([r["loss"] for r in a], [r["loss"] for r in b])
            lines.append(f"| {harder}'s proxy task harder than {baseline}'s | loss (higher) | {d:+.3f} | {band:.3f} | "
                         f"**{v}** |")
        else:
            lines.append(f"| {harder}'s proxy task harder than {baseline}'s | proxy accuracy, loss | - | - | pending |")
    return "\n".join(lines) + "\n"


def commit_folders(folders: list[str], message: str) -> None:
    """Commit these folders only (metrics, reports; checkpoints are ignored); a failure is reported, not fatal.
    The other claim runners (continual_claim.py, schane_claim.py) use it too."""
    done = subprocess.run(["git", "add", *folders], cwd=ROOT, capture_output=True, text=True)
    if done.returncode == 0:
        done = subprocess.run(["git", "commit", "-q", "-m", message, "--", *folders], cwd=ROOT,
                              capture_output=True, text=True)
    if done.returncode != 0 and "nothing to commit" not in done.stdout + done.stderr:
        print(f"claims: commit failed: {(done.stderr or done.stdout).strip()}", file=sys.stderr, flush=True)


def commit(claim: Claim, message: str) -> None:
    """Commit the claim's folders, and those of the claims whose runs it shares."""
    commit_folders(sorted({claim.folder, *(a.runs for a in claim.arms if a.runs)}), message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("claim", choices=list(CLAIMS))
    parser.add_argument("--report", action="store_true", help="only regenerate the report")
    parser.add_argument("--commit", action="store_true", help="git-commit the claim's folder after every cell")
    args = parser.parse_args()
    claim = CLAIMS[args.claim]
    out = ROOT / claim.folder
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        # Seed-major order: after the first round every arm has one seed, after the second two.
        cells = [(arm, seed) for seed in claim.seeds for arm in claim.arms]
        for position, (arm, seed) in enumerate(cells, 1):
            if cell_result(claim.run_dir(arm, seed)) is not None:
                continue
            started = time.time()
            print(f"claims {args.claim}: cell {position}/{len(cells)} {arm.name} seed {seed}", flush=True)
            run_cell(claim, arm, seed)
            print(f"claims {args.claim}: {arm.name} seed {seed} done in {time.time() - started:.0f} s", flush=True)
            (out / "report.md").write_text(report(claim))
            if args.commit:
                commit(claim, f"claims {args.claim}: {arm.name} seed {seed} finished")
    (out / "report.md").write_text(report(claim))
    print(report(claim))


if __name__ == "__main__":
    main()
