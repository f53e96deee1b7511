"""``synco report RUN_DIR [RUN_DIR ...] --out DIR``: figures and one Markdown page comparing runs.

Reads each run's ``config.yaml`` and ``metrics.jsonl`` (and ``linear/``, ``finetune_*/`` when the
protocols were run) and writes PNG figures (matplotlib, Agg backend) and ``report.md``:

- kNN top-1 and training loss against epoch;
- proxy-task accuracy (real and real + synthetic negatives) against epoch;
- the hardness profile of the last epoch (top matching probabilities, log scale);
- alignment / uniformity scatter of the last epoch (x = -uniform, y = -align; upper right is better);
- class-concentration distributions (per-class inter/intra distance ratios) of the last epoch;
- false-negative rates against epoch;
- a table of final metrics, one row per run, and one row with mean +- std over the seeds of every
  setting that has several (runs named ``<setting>_s<seed>``).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from synco.engine.metrics import read_metrics

FINAL_COLUMNS = [
    ("eval/knn_top1", "kNN top-1 %"),
    ("eval/knn_top5", "kNN top-5 %"),
    ("linear/top1_mean", "linear top-1 %"),
    ("finetune_1pct/top1_mean", "1 % labels top-1 %"),
    ("finetune_10pct/top1_mean", "10 % labels top-1 %"),
    ("analysis/proxy_acc", "proxy acc"),
    ("analysis/fn_rate_hard", "false neg. (hard)"),
    ("analysis/align", "align"),
    ("analysis/uniform", "uniform"),
    ("analysis/effective_rank", "eff. rank"),
]


class Run:
    """One run directory: its name, method, seed and metric records."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        metrics = self.path / "metrics.jsonl"
        if not metrics.is_file():
            raise FileNotFoundError(f"{metrics} does not exist: is {self.path} a synco run directory?")
        self.records = read_metrics(metrics)
        config = yaml.safe_load((self.path / "config.yaml").read_text()) if (self.path / "config.yaml").is_file() else {}
        self.method = config.get("method", {}).get("name", "?")
        self.seed = config.get("train", {}).get("seed", 0)
        self.name = self.path.name
        # Runs whose names differ only in a trailing _s<seed> are seeds of one setting.
        self.group = re.sub(r"_s\d+$", "", self.name)

    def series(self, key: str) -> tuple[list[int], list]:
        """(epochs, values) of every record holding ``key``."""
        points = [(r["epoch"], r[key]) for r in self.records if key in r and "epoch" in r]
        return [p[0] for p in points], [p[1] for p in points]

    def last(self, key: str):
        values = self.series(key)[1]
        return values[-1] if values else None

    def final(self) -> dict:
        """The last value of every reported metric, including the protocols' summaries."""
        out = {key: self.last(key) for key, _ in FINAL_COLUMNS if not key.startswith(("linear/", "finetune_"))}
        linear = self.path / "linear" / "metrics.jsonl"
        if linear.is_file():
            out["linear/top1_mean"] = read_metrics(linear)[-1].get("linear/top1_mean")
        for pct in ("1", "10"):
            finetune = self.path / f"finetune_{pct}pct" / "metrics.jsonl"
            if finetune.is_file():
                out[f"finetune_{pct}pct/top1_mean"] = read_metrics(finetune)[-1].get("finetune/top1_mean")
        return out


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def final_table(runs: list[Run]) -> list[list[str]]:
    """Rows of the final-metrics table: header, one row per run, then mean +- std per setting with several seeds."""
    header = ["run", "method", "seed", *[label for _, label in FINAL_COLUMNS]]
    rows = [header]
    finals = [run.final() for run in runs]
    for run, final in zip(runs, finals):
        rows.append([run.name, run.method, str(run.seed), *[_format(final.get(key)) for key, _ in FINAL_COLUMNS]])
    groups: dict[str, list[dict]] = defaultdict(list)
    methods = {}
    for run, final in zip(runs, finals):
        groups[run.group].append(final)
        methods[run.group] = run.method
    for group, members in groups.items():
        if len(members) < 2:
            continue
        cells = []
        for key, _ in FINAL_COLUMNS:
            values = [m[key] for m in members if m.get(key) is not None]
            if len(values) < 2:
                cells.append("-")
            else:
                cells.append(f"{_format(statistics.mean(values))} +- {_format(statistics.stdev(values))}")
        rows.append([f"{group}: mean of {len(members)}", methods[group], "", *cells])
    return rows


def _figures(runs: list[Run], out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []

    def save(fig, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append((name, caption))

    def lines(keys_labels, ylabel: str, name: str, caption: str, logy: bool = False) -> None:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for run in runs:
            for key, label in keys_labels:
                epochs, values = run.series(key)
                if values:
                    ax.plot(epochs, values, marker="o", label=f"{run.name}{label}")
                    drawn = True
        if not drawn:
            plt.close(fig)
            return
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, name, caption)

    lines([("eval/knn_top1", "")], "kNN top-1 (%)", "knn.png", "kNN top-1 accuracy on the test set")
    lines([("train/loss", "")], "InfoNCE loss (epoch mean)", "loss.png", "training loss")
    lines([("analysis/proxy_acc", " (real + synthetic)"), ("analysis/proxy_acc_real", " (real only)")],
          "share of queries whose key wins", "proxy.png", "proxy-task accuracy (MoCHI; SynCo Fig. 3)")
    lines([("analysis/fn_rate_hard", " (N hardest)"), ("analysis/fn_rate_sources", " (synthetic sources)")],
          "share from the query's class", "false_negatives.png", "false-negative rates of the hard negatives")

    profiles = [(run, run.last("analysis/hardness_top")) for run in runs]
    if any(p for _, p in profiles):
        fig, ax = plt.subplots(figsize=(6, 4))
        for run, profile in profiles:
            if profile:
                ax.plot(range(1, len(profile) + 1), profile, label=run.name)
        ax.set_xlabel("rank of the negative")
        ax.set_ylabel("matching probability (mean over queries)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "hardness.png", "hardness: top matching probabilities of the queue negatives, last epoch (SynCo Fig. 2)")

    points = [(run, run.last("analysis/uniform"), run.last("analysis/align")) for run in runs]
    if any(u is not None and a is not None for _, u, a in points):
        fig, ax = plt.subplots(figsize=(5, 4))
        for run, uniform, align in points:
            if uniform is not None and align is not None:
                ax.scatter(-uniform, -align, s=50)
                ax.annotate(run.name, (-uniform, -align), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("-uniform (higher is better)")
        ax.set_ylabel("-align (higher is better)")
        ax.grid(alpha=0.3)
        save(fig, "align_uniform.png", "alignment and uniformity on held-out images, last epoch (SynCo Fig. 4)")

    ratios = [(run.name, run.last("analysis/class_ratio")) for run in runs]
    ratios = [(n, r) for n, r in ratios if r]
    if ratios:
        fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(ratios) + 2), 4))
        ax.boxplot([r for _, r in ratios])
        ax.set_xticks(range(1, len(ratios) + 1), [n for n, _ in ratios], rotation=20, fontsize=8)
        ax.set_ylabel("inter / intra class distance")
        ax.grid(alpha=0.3, axis="y")
        save(fig, "class_concentration.png", "class concentration per class, last epoch (SynCo Fig. 5)")
    return written


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write the figures and ``report.md`` into ``out``; returns the page's path."""
    runs = [Run(p) for p in run_dirs]
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"run directories must have distinct names to be told apart: {names}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(runs, out)
    table = final_table(runs)
    lines = ["# SynCo report", "", "Runs: " + ", ".join(f"`{run.path}`" for run in runs), "",
             "## Final metrics", "", "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    note = ("Means +- sample standard deviations are over the seeds of one setting (runs named "
            "<setting>_s<seed>); a difference smaller than them says nothing.")
    lines += ["", note, ""]
    for name, caption in figures:
        lines += [f"## {caption[0].upper() + caption[1:]}", "", f"![{caption}]({name})", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines))
    return page
