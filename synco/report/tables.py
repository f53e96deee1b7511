"""``synco report RUN_DIR [RUN_DIR ...] --out DIR``: figures and one Markdown page comparing runs.

Reads each run's ``config.yaml`` and ``metrics.jsonl`` (and ``linear/``, ``finetune_*/`` when the
protocols were run) and writes PNG figures (``report_figures.py``: matplotlib, Agg backend) and
``report.md``:

- kNN top-1 and training loss against epoch;
- proxy-task accuracy (real and real + synthetic negatives) against epoch;
- the hardness profile of every epoch (top matching probabilities, log scale), a panel per setting;
- each strategy's share of the negative probability mass and its largest logit against the real one;
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
from synco.errors import ensure_writable_dir
from synco.report.figures import write_figures

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
    ("continual/average_accuracy", "continual avg acc %"),
    ("continual/average_forgetting", "forgetting"),
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
        self.config = config or {}
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
        if values:
            return values[-1]
        # Records without an epoch (a continual stream's summary) count too.
        return next((r[key] for r in reversed(self.records) if key in r), None)

    @property
    def supervision(self) -> str:
        """``labels`` when pretraining used the labels (SupCon, SCL, H-SCL, label-aware SynCo), else ``none``."""
        return "labels" if self.last("train/uses_labels") else "none"

    def finetune_tags(self) -> list[str]:
        """The fine-tuning results beside the run: ``1pct``, ``10pct_schane``, ``5shot_supcon``, ..."""
        return sorted(p.parent.name[len("finetune_"):] for p in self.path.glob("finetune_*/metrics.jsonl"))

    def final(self) -> dict:
        """The last value of every reported metric, including the protocols' summaries."""
        out = {key: self.last(key) for key, _ in FINAL_COLUMNS if not key.startswith(("linear/", "finetune_"))}
        linear = self.path / "linear" / "metrics.jsonl"
        if linear.is_file():
            out["linear/top1_mean"] = read_metrics(linear)[-1].get("linear/top1_mean")
        elif self.last("continual/linear_all_classes") is not None:  # a stream's all-class probe after its last task
            out["linear/top1_mean"] = self.last("continual/linear_all_classes")
        for tag in self.finetune_tags():
            out[f"finetune_{tag}/top1_mean"] = read_metrics(self.path / f"finetune_{tag}" / "metrics.jsonl")[-1].get(
                "finetune/top1_mean")
        return out


def finetune_label(tag: str) -> str:
    """Column title of a fine-tuning result: ``1pct`` -> "1 % labels top-1 %", ``5shot_schane`` -> "5-shot CE+SCHaNe top-1 %"."""
    subset, _, loss = tag.partition("_")
    amount = f"{subset[:-3]} % labels" if subset.endswith("pct") else f"{subset[:-4]}-shot"
    objective = {"": "", "supcon": " CE+SupCon", "schane": " CE+SCHaNe"}.get(loss, f" {loss}")
    return f"{amount}{objective} top-1 %"


def final_columns(runs: list[Run]) -> list[tuple[str, str]]:
    """FINAL_COLUMNS with the fine-tuning columns of the runs at hand (the 1 % and 10 % CE ones always)."""
    tags = {"1pct", "10pct"} | {tag for run in runs for tag in run.finetune_tags()}

    def order(tag):
        subset, _, loss = tag.partition("_")
        number = subset.removesuffix("pct").removesuffix("shot")
        return (subset.endswith("shot"), float(number) if number.replace(".", "").isdigit() else 0.0, loss)

    finetune = [(f"finetune_{tag}/top1_mean", finetune_label(tag)) for tag in sorted(tags, key=order)]
    plain = [c for c in FINAL_COLUMNS if not c[0].startswith("finetune_")]
    return plain[:3] + finetune + plain[3:]


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def final_table(runs: list[Run]) -> list[list[str]]:
    """Rows of the final-metrics table: header, one row per run, then mean +- std per setting with several seeds."""
    columns = final_columns(runs)
    header = ["run", "method", "labels", "seed", *[label for _, label in columns]]
    rows = [header]
    finals = [run.final() for run in runs]
    for run, final in zip(runs, finals):
        rows.append([run.name, run.method, run.supervision, str(run.seed),
                     *[_format(final.get(key)) for key, _ in columns]])
    groups: dict[str, list[dict]] = defaultdict(list)
    methods = {}
    for run, final in zip(runs, finals):
        groups[run.group].append(final)
        methods[run.group] = run.method
    for group, members in groups.items():
        if len(members) < 2:
            continue
        cells = []
        for key, _ in columns:
            values = [m[key] for m in members if m.get(key) is not None]
            if len(values) < 2:
                cells.append("-")
            else:
                cells.append(f"{_format(statistics.mean(values))} +- {_format(statistics.stdev(values))}")
        rows.append([f"{group}: mean of {len(members)}", methods[group], "", "", *cells])
    return rows


#: Metrics compared with the reference setting in the differences table.
DIFFERENCE_COLUMNS = [("eval/knn_top1", "kNN top-1"), ("linear/top1_mean", "linear top-1"),
                      ("finetune_1pct/top1_mean", "1 % labels top-1")]


def difference_table(runs: list[Run], reference: str = "moco_v2") -> list[list[str]]:
    """Each setting with >= 2 seeds against ``reference``: difference of means and its standard error.

    ``SE = sqrt(s_a^2 / n_a + s_b^2 / n_b)`` over the seeds (sample standard deviations). A difference
    within 2 SE is reported as such; beyond 2 SE it is a rough screen, not a significance test (with 2-3
    seeds the t distribution's 95 % point is 4.3-2.8 SE). Returns [] without a reference with >= 2 seeds.
    """
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        final = run.final()
        for key, _ in DIFFERENCE_COLUMNS:
            if final.get(key) is not None:
                values[run.group][key].append(final[key])
    if reference not in values:
        return []
    rows = [["setting", f"vs {reference}", *[f"{label}: difference +- SE (x SE)" for _, label in DIFFERENCE_COLUMNS]]]
    for group, metrics in values.items():
        if group == reference:
            continue
        cells = []
        for key, _ in DIFFERENCE_COLUMNS:
            a, b = metrics.get(key, []), values[reference].get(key, [])
            if len(a) < 2 or len(b) < 2:
                cells.append("-")
                continue
            diff = statistics.mean(a) - statistics.mean(b)
            se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
            ratio = abs(diff) / se if se > 0 else float("inf")
            verdict = "within 2 SE" if ratio <= 2 else "beyond 2 SE"
            cells.append(f"{diff:+.2f} +- {se:.2f} ({ratio:.1f}, {verdict})")
        if any(c != "-" for c in cells):
            rows.append([group, f"n = {len(metrics[DIFFERENCE_COLUMNS[0][0]])} vs {len(values[reference][DIFFERENCE_COLUMNS[0][0]])}", *cells])
    return rows if len(rows) > 1 else []


#: Settings that make runs incomparable when they differ (besides the method, which a report compares).
COMPARED_SETTINGS = ("data.dataset", "data.subset", "data.image_size", "model.backbone", "train.epochs",
                     "train.batch_size")
#: Uniformity (log E exp(-2 |x - y|^2)) above this: the embeddings sit near one point.
COLLAPSED_UNIFORMITY = -0.1


def _setting(run: Run, key: str):
    value = run.config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def warnings_for(runs: list[Run]) -> list[str]:
    """What a reader must know before comparing these runs: differing settings, collapsed runs."""
    out = []
    for key in COMPARED_SETTINGS:
        values = {run.name: _setting(run, key) for run in runs}
        if len({repr(v) for v in values.values()}) > 1:
            listed = ", ".join(f"{name}: {value}" for name, value in values.items())
            out.append(f"the runs differ in {key} ({listed}): their figures do not compare directly")
    for run in runs:
        uniform, proxy = run.last("analysis/uniform"), run.last("analysis/proxy_acc")
        if uniform is not None and uniform > COLLAPSED_UNIFORMITY:
            out.append(f"{run.name} looks collapsed: uniformity {uniform:.3f} (near 0: the embeddings sit near one "
                       "point)")
        elif proxy is not None and proxy >= 0.999:
            out.append(f"{run.name}: proxy-task accuracy {proxy:.3f}, the positive always wins; the negatives are "
                       "too easy, or the representation collapsed")
    return out


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write the figures and ``report.md`` into ``out``; returns the page's path."""
    runs = [Run(p) for p in run_dirs]
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"run directories must have distinct names to be told apart: {names}")
    out = Path(out)
    ensure_writable_dir(out, "the report folder")
    figures = write_figures(runs, out)
    table = final_table(runs)
    lines = ["# SynCo report", "", "Runs: " + ", ".join(f"`{run.path}`" for run in runs), "",
             "## Final metrics", "", "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    warnings = warnings_for(runs)
    if warnings:
        lines[4:4] = ["## Read this first", "", *[f"- {w}" for w in warnings], ""]
    note = ("Means +- sample standard deviations are over the seeds of one setting (runs named "
            "<setting>_s<seed>); a difference smaller than them says nothing.")
    lines += ["", note, ""]
    differences = difference_table(runs)
    if differences:
        lines += ["## Differences against MoCo-v2 over seeds", "", "| " + " | ".join(differences[0]) + " |",
                  "|" + "---|" * len(differences[0])]
        lines += ["| " + " | ".join(row) + " |" for row in differences[1:]]
        lines += ["", ("Difference of the means over seeds and its standard error sqrt(s_a^2/n_a + s_b^2/n_b). "
                  "Within 2 SE: the seeds do not separate the settings. Beyond 2 SE is a rough screen, not a "
                  "significance test: with 2-3 seeds the t distribution's 95 % point lies at 4.3-2.8 SE."), ""]
    for name, caption in figures:
        lines += [f"## {caption[0].upper() + caption[1:]}", "", f"![{caption}]({name})", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines))
    return page
