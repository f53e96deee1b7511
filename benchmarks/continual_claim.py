"""PNR against CaSSLe and fine-tuning under docs/reproduction.md: first a stream that forgets, then the claim.

    .venv/bin/python benchmarks/continual_claim.py search              # seed-0 fine-tuning on each candidate stream
    .venv/bin/python benchmarks/continual_claim.py claim --stream NAME # 5 arms x 3 seeds on the chosen stream
    .venv/bin/python benchmarks/continual_claim.py claim --stream chosen  # the stream the search chose
    .venv/bin/python benchmarks/continual_claim.py claim --stream NAME --report   # only the report
    add --commit to git-commit the folder after every finished run

The search trains plain fine-tuning (``continual.regularizer=none``) on the candidate streams of STREAMS in their
order and stops at the first whose average forgetting reaches ``--enough`` points (seed 0); if none does, the chosen
stream is the cheapest of those that forget most (within TIE points). The claim then runs fine-tuning, CaSSLe,
PNR and PNR's two one-sided ablations, seeds 0-2, on the chosen stream. Every run is
``synco continual`` into ``reports/claims/continual_cifar10/runs/<stream>/<arm>_s<seed>``; a finished run is
skipped and an unfinished one continues from its last finished task or checkpoint (``--resume``). Ctrl-C or
SIGTERM stop the current task after its step with a checkpoint. ``report.md`` is regenerated after every run from
what has finished. Checkpoints are not committed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from claims import commit_folders, synco, verdict  # shared with benchmarks/claims.py

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SYNCO_DATA_ROOT", str(ROOT.parent / "shared" / "datasets"))
RECIPE = "configs/continual/cifar10_5tasks_mocov2plus.yaml"
FOLDER = ROOT / "reports" / "claims" / "continual_cifar10"

#: Candidate streams in the order they are tried (CIFAR-10, 5 tasks of 2 classes, MoCo-v2+, the small CNN).
#: ``data.subset=10000`` keeps the first 10,000 training images: about 2,000 per task.
STREAMS: dict[str, list[str]] = {
    "n2000_e20": ["data.subset=10000", "train.epochs=20"],
    "n2000_e60": ["data.subset=10000", "train.epochs=60"],
    "n10000_e20": ["train.epochs=20"],
}
#: Arms of the claim: name -> overrides of the stream.
ARMS: dict[str, list[str]] = {
    "finetune": ["continual.regularizer=none"],
    "cassle": ["continual.regularizer=cassle"],
    "pnr": ["continual.regularizer=pnr"],
    "pnr_plasticity_only": ["continual.regularizer=pnr", "continual.pseudo_negatives=plasticity"],
    "pnr_stability_only": ["continual.regularizer=pnr", "continual.pseudo_negatives=stability"],
}
#: Every run: 10-epoch linear probes per task (R_linear and the all-class probe after the last task), the first 10,000
#: training images as the kNN bank and probe training set, the first 5,000 test images, no progress bars.
COMMON = ["train.progress=false", "continual.linear_epochs=10", "eval.train_subset=10000", "eval.test_subset=5000"]
SEEDS = (0, 1, 2)


def final_record(run_dir: Path) -> dict | None:
    """The stream's closing record (R matrices and the continual metrics), or None while it is unfinished."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    for line in reversed(path.read_text().splitlines()):
        record = json.loads(line) if line.strip() else {}
        if record.get("finished") and record.get("task", "all") is None:
            return record
    return None


def run(stream: str, arm: str, seed: int) -> Path:
    run_dir = FOLDER / "runs" / stream / f"{arm}_s{seed}"
    if final_record(run_dir) is None:
        synco("continual", RECIPE, *STREAMS[stream], *ARMS[arm], *COMMON, f"train.seed={seed}", f"run_dir={run_dir}",
              *(["--resume"] if run_dir.exists() else []))
    return run_dir


#: Training images seen per task (images x epochs), the cost that breaks near-ties of the search.
STREAM_COST = {"n2000_e20": 2000 * 20, "n2000_e60": 2000 * 60, "n10000_e20": 10000 * 20}
#: Forgetting differences up to this many points count as a tie (fine-tuning's seed spread at 2 epochs per task
#: on 10,000 images per task was 0.12).
TIE = 0.2


def chosen_stream(enough: float) -> str | None:
    """The search's choice: the first stream (in STREAMS order) whose seed-0 forgetting reaches ``enough`` points;
    if none does, once every candidate has finished, the cheapest (STREAM_COST) of those within TIE points of the
    largest forgetting; None while the search is open."""
    finished = {}
    for name in STREAMS:
        record = final_record(FOLDER / "runs" / name / "finetune_s0")
        if record is None:
            return None
        finished[name] = scores(record)["forgetting"]
        if finished[name] >= enough:
            return name
    most = max(finished.values())
    return min((name for name, f in finished.items() if f >= most - TIE), key=STREAM_COST.__getitem__)


def plasticity(matrix: list[list[float]]) -> float:
    """Mean of R's diagonal: each task's accuracy right after it was learnt."""
    return statistics.mean(matrix[t][t] for t in range(len(matrix)))


def scores(record: dict) -> dict:
    return {"forgetting": record["continual/average_forgetting"], "accuracy": record["continual/average_accuracy"],
            "plasticity": plasticity(record["continual/R_matrix"]),
            "linear_all": record.get("continual/linear_all_classes"),
            "linear_forgetting": record.get("continual/linear_average_forgetting")}


def report(stream: str | None) -> str:
    lines = ["# PNR against CaSSLe and fine-tuning (CIFAR-10, 5 tasks, MoCo-v2+, small CNN)", "",
             "Protocol and decision rule: docs/reproduction.md. Commands: `.venv/bin/python benchmarks/"
             "continual_claim.py search`, then `... claim --stream NAME`. Forgetting and accuracies in points of "
             "kNN top-1 on each task's classes (the R matrix); plasticity = mean of R's diagonal; linear all = "
             "the all-class linear probe after the last task (the authors' headline metric, secondary here); "
             "linear forgetting = average forgetting of the per-task linear probes (R_linear).", "", "## Stream search (fine-tuning, seed 0)", "",
             "| stream | overrides | average forgetting | average accuracy | plasticity | linear all | linear forgetting |",
             "|---|---|---|---|---|---|---|"]
    for name, overrides in STREAMS.items():
        record = final_record(FOLDER / "runs" / name / "finetune_s0")
        if record is None:
            lines.append(f"| {name} | `{' '.join(overrides)}` | pending | | | | |")
            continue
        s = scores(record)
        linear = "-" if s["linear_all"] is None else f"{s['linear_all']:.2f}"
        linear_forgetting = "-" if s["linear_forgetting"] is None else f"{s['linear_forgetting']:.2f}"
        lines.append(f"| {name} | `{' '.join(overrides)}` | {s['forgetting']:.2f} | {s['accuracy']:.2f} | "
                     f"{s['plasticity']:.2f} | {linear} | {linear_forgetting} |")
    if stream is None:
        return "\n".join(lines) + "\n"
    results = {arm: {seed: final_record(FOLDER / "runs" / stream / f"{arm}_s{seed}") for seed in SEEDS}
               for arm in ARMS}
    lines += ["", f"## The claim on stream {stream}", "",
              "| arm | seeds done | forgetting mean +- sd | accuracy mean +- sd | plasticity mean +- sd | "
              "linear all mean +- sd | linear forgetting mean +- sd |", "|---|---|---|---|---|---|---|"]
    done = {arm: [scores(r) for r in per_seed.values() if r is not None] for arm, per_seed in results.items()}
    for arm, rows in done.items():
        cells = []
        for key in ("forgetting", "accuracy", "plasticity", "linear_all", "linear_forgetting"):
            values = [r[key] for r in rows if r[key] is not None]
            cells.append(f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}" if len(values) >= 2
                         else (f"{values[0]:.2f}" if values else "-"))
        lines.append(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")
    finetune = done["finetune"]
    if len(finetune) == len(SEEDS):
        spread = statistics.stdev(r["forgetting"] for r in finetune)
        mean = statistics.mean(r["forgetting"] for r in finetune)
        room = ("more than three times its seed spread: the stream has room for the claim" if mean > 3 * spread
                else "not three times its seed spread: the stream does not resolve the claim")
        lines += ["", f"Fine-tuning forgets {mean:.2f} +- {spread:.2f} points, {room}."]
    lines += ["", "Forgetting: the difference is the worse arm's mean minus the better arm's (positive = the claim's "
              "direction). Plasticity: the better arm's mean minus the worse arm's; the claim needs it not lower "
              "beyond the band.", "", "| claim | metric | difference | band (2 sd) | verdict |", "|---|---|---|---|---|"]
    for better, worse in (("pnr", "cassle"), ("pnr", "finetune"), ("cassle", "finetune")):
        a, b = done[better], done[worse]
        if len(a) == len(b) == len(SEEDS) and all(r["linear_all"] is not None for r in a + b):
            # Secondary: the authors' headline metric, the all-class linear probe after the last task.
            v, d, band = verdict([r["linear_all"] for r in a], [r["linear_all"] for r in b])
            lines.append(f"| {better} above {worse} (secondary) | linear all | {d:+.2f} | {band:.2f} | {v} |")
        if len(a) == len(b) == len(SEEDS):
            # Less forgetting is better: the difference is worse minus better, positive in the claim's direction.
            v, d, band = verdict([-r["forgetting"] for r in a], [-r["forgetting"] for r in b])
            lines.append(f"| {better} forgets less than {worse} | forgetting | {d:+.2f} | {band:.2f} | **{v}** |")
            _, d, band = verdict([r["plasticity"] for r in a], [r["plasticity"] for r in b])
            kept = "not lower" if d >= -band else "**lower**"
            lines.append(f"| {better} plasticity vs {worse} | plasticity | {d:+.2f} | {band:.2f} | {kept} |")
        else:
            lines.append(f"| {better} vs {worse} | forgetting | - | - | pending ({len(a)} and {len(b)} of "
                         f"{len(SEEDS)} seeds) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["search", "claim"])
    parser.add_argument("--stream", choices=[*STREAMS, "chosen"],
                        help="the stream of the claim (stage claim); 'chosen': the search's choice")
    parser.add_argument("--enough", type=float, default=2.0,
                        help="search: stop at the first stream whose seed-0 forgetting reaches this many points")
    parser.add_argument("--report", action="store_true", help="only regenerate the report")
    parser.add_argument("--commit", action="store_true", help="git-commit the folder after every finished run")
    args = parser.parse_args()
    if args.stage == "claim" and args.stream is None:
        parser.error("claim needs --stream NAME (one of " + ", ".join(STREAMS) + ")")
    if args.stream == "chosen":
        args.stream = chosen_stream(args.enough)
        if args.stream is None:
            parser.error("--stream chosen: the stream search has not finished; run the search stage first")
        print(f"continual_claim: the search chose {args.stream}", flush=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    if args.stage == "search":
        cells = [(name, "finetune", 0) for name in STREAMS]
    else:  # seed-major: after each round every arm has one more seed
        cells = [(args.stream, arm, seed) for seed in SEEDS for arm in ARMS]
    if not args.report:
        for stream, arm, seed in cells:
            run_dir = FOLDER / "runs" / stream / f"{arm}_s{seed}"
            if final_record(run_dir) is None:
                started = time.time()
                print(f"continual_claim: {stream} {arm} seed {seed}", flush=True)
                run(stream, arm, seed)
                print(f"continual_claim: {stream} {arm} seed {seed} done in {time.time() - started:.0f} s",
                      flush=True)
                (FOLDER / "report.md").write_text(report(args.stream))
                if args.commit:
                    commit_folders([str(FOLDER)], f"claims continual: {stream} {arm} seed {seed} finished")
            if args.stage == "search" and scores(final_record(run_dir))["forgetting"] >= args.enough:
                print(f"continual_claim: {stream} forgets enough at seed 0; run the claim with --stream {stream}",
                      flush=True)
                break
    (FOLDER / "report.md").write_text(report(args.stream))
    print(report(args.stream))


if __name__ == "__main__":
    main()
