"""The PNG figures of ``synco report`` (matplotlib, Agg backend), one function per figure.

Every function takes the runs (``synco.report.Run``) and draws what their ``metrics.jsonl`` hold;
a figure whose metrics no run logged is skipped. Runs named ``<setting>_s<seed>`` are seeds of one
setting: curves show the mean over a setting's seeds with a +- std band, one colour per setting, so
that a benchmark of many seeds stays readable; figures that need one curve per epoch (hardness) or
per strategy draw the first seed of each setting. Legends sit outside the axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

#: Strategies in the order SynCo lays them out, for the strategy figure.
from synco.negatives.module import STRATEGIES as _STRATEGIES

#: H-SCL's Fig. 4 settings as synco.analysis.hard_negatives logs them, with their captions.
_HSCL_SETTINGS = [("tau_e-0.5", "tau = e^-0.5"), ("tau_e-0.1", "tau = e^-0.1"), ("beta_1", "beta = 1"),
                  ("beta_2", "beta = 2")]

if TYPE_CHECKING:
    from synco.report import Run


def _settings(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by setting, in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return groups


def _first_of_each_setting(runs: list[Run]) -> list[Run]:
    return [members[0] for members in _settings(runs).values()]


class _Figures:
    """Collects (file name, caption) of the figures written into ``out``."""

    def __init__(self, runs: list[Run], out: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt, self.runs, self.out = plt, runs, out
        self.settings = _settings(runs)
        palette = plt.get_cmap("tab10" if len(self.settings) <= 10 else "tab20")
        self.colour = {group: palette(i % palette.N) for i, group in enumerate(self.settings)}
        self.written: list[tuple[str, str]] = []

    def save(self, fig, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=120, bbox_inches="tight")  # keeps legends outside the axes
        self.plt.close(fig)
        self.written.append((name, caption))

    def label(self, group: str) -> str:
        seeds = len(self.settings[group])
        return f"{group} ({seeds} seeds)" if seeds > 1 else group

    def lines(self, keys_labels, ylabel: str, name: str, caption: str) -> None:
        """Per setting and key: the mean over seeds against epoch, with a +- std band; when every
        setting has a single epoch (a final evaluation), the means with std error bars side by side."""
        import numpy as np
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator

        styles = ["-", "--", ":", "-."]
        curves = []  # (group, style, epochs, mean, std, per-seed values of each epoch)
        for group, members in self.settings.items():
            for (key, _), style in zip(keys_labels, styles):
                by_epoch: dict[int, list[float]] = {}
                for run in members:
                    for epoch, value in zip(*run.series(key)):
                        if value is not None:  # e.g. a fraction over no anchor
                            by_epoch.setdefault(epoch, []).append(value)
                if by_epoch:
                    epochs = sorted(by_epoch)
                    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
                    std = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0 for e in epochs])
                    curves.append((group, style, epochs, mean, std, [by_epoch[e] for e in epochs]))
        if not curves:
            return
        fig, ax = self.plt.subplots(figsize=(6, 4))
        if all(len(c[2]) == 1 for c in curves):  # one evaluation per run: compare the settings directly
            groups = list(dict.fromkeys(c[0] for c in curves))
            width = 0.8 / len(keys_labels)
            for group, style, epochs, mean, std, seeds in curves:
                offset = (styles.index(style) - (len(keys_labels) - 1) / 2) * width
                x = groups.index(group) + offset
                colour = self.colour[group]
                ax.errorbar([x], mean, yerr=std, fmt="o", color=colour, capsize=4,
                            markerfacecolor=colour if style == "-" else "white")
                ax.scatter([x] * len(seeds[0]), seeds[0], s=10, color=colour, alpha=0.5)
            ax.set_xticks(range(len(groups)), [self.label(g) for g in groups], rotation=30, ha="right", fontsize=7)
            ax.set_xlabel(f"setting (epoch {curves[0][2][0]}; error bars +- std over seeds, dots: seeds)")
            caption += ", last epoch, mean +- std over seeds"
        else:
            for group, style, epochs, mean, std, _ in curves:
                colour = self.colour[group]
                ax.plot(epochs, mean, style, marker="o", markersize=4, color=colour,
                        label=self.label(group) if style == "-" else None)
                if std.any():
                    ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            handles, labels = ax.get_legend_handles_labels()
            if len(keys_labels) > 1:  # line styles name the keys
                for (_, text), style in zip(keys_labels, styles):
                    handles.append(Line2D([], [], color="black", linestyle=style))
                    labels.append(text.strip(" ()"))
            ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
            caption += " (mean over seeds, band +- std)"
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        self.save(fig, name, caption)

    def hardness(self) -> None:
        """A panel per setting: the mean top matching probabilities of every epoch (SynCo Fig. 2)."""
        runs = [run for run in _first_of_each_setting(self.runs) if run.series("analysis/hardness_top")[1]]
        if not runs:
            return
        columns = min(3, len(runs))
        rows = -(-len(runs) // columns)
        fig, axes = self.plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), sharex=True, sharey=True,
                                      squeeze=False)
        colormap = self.plt.get_cmap("viridis")
        for ax, run in zip(axes.flat, runs):
            epochs, profiles = run.series("analysis/hardness_top")
            for i, (epoch, profile) in enumerate(zip(epochs, profiles)):
                shade = colormap(i / max(1, len(epochs) - 1))
                ax.plot(range(1, len(profile) + 1), profile, color=shade, label=f"epoch {epoch}")
            ax.set_title(run.name, fontsize=9)
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in axes.flat[len(runs):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("rank of the negative")
        for ax in axes[:, 0]:
            ax.set_ylabel("matching probability")
        self.save(fig, "hardness.png", "hardness: top matching probabilities of the queue negatives (mean over "
                  "queries), per epoch, first seed of each setting (SynCo Fig. 2)")

    def strategies(self) -> None:
        """Last epoch, per setting with synthesis: each strategy's probability mass and largest logit."""
        import numpy as np

        runs = [run for run in _first_of_each_setting(self.runs)
                if any(run.last(f"analysis/mass/{s}") is not None for s in _STRATEGIES)]
        if not runs:
            return
        fig, (mass_ax, logit_ax) = self.plt.subplots(1, 2, figsize=(11, 4))
        x = np.arange(len(_STRATEGIES))
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            offset = (i - (len(runs) - 1) / 2) * width
            mass = [run.last(f"analysis/mass/{s}") or 0.0 for s in _STRATEGIES]
            bars = mass_ax.bar(x + offset, mass, width, label=run.name, color=self.colour[run.group])
            real = run.last("analysis/max_real_logit")
            logits = [run.last(f"analysis/max_synthetic_logit/{s}") for s in _STRATEGIES]
            logit_ax.bar(x + offset, [v if v is not None else np.nan for v in logits], width,
                         color=bars[0].get_facecolor(), label=run.name)
            if real is not None:
                logit_ax.hlines(real, x[0] - 0.4, x[-1] + 0.4, colors=bars[0].get_facecolor(), linestyles="--",
                                linewidth=1)
        for ax in (mass_ax, logit_ax):
            ax.set_xticks(x, _STRATEGIES, rotation=20, fontsize=8)
            ax.grid(alpha=0.3, axis="y")
        mass_ax.legend(fontsize=7)  # one legend: the colours are the same in both panels
        mass_ax.set_ylabel("share of the negative probability mass")
        logit_ax.set_ylabel("largest logit q.s (mean over queries)")
        logit_ax.set_title("dashed: largest real logit q.n", fontsize=8)
        self.save(fig, "strategies.png", "synthetic negatives by strategy, last epoch: share of the negative "
                  "probability mass and largest logit against the largest real one (SynCo section 6.1)")

    def align_uniform(self) -> None:
        points = [(run, run.last("analysis/uniform"), run.last("analysis/align")) for run in self.runs]
        points = [(run, u, a) for run, u, a in points if u is not None and a is not None]
        if not points:
            return
        fig, ax = self.plt.subplots(figsize=(5, 4))
        labelled = set()
        for run, uniform, align in points:
            label = None if run.group in labelled else self.label(run.group)
            labelled.add(run.group)
            ax.scatter(-uniform, -align, s=40, color=self.colour[run.group], label=label)
        ax.set_xlabel("-uniform (higher is better)")
        ax.set_ylabel("-align (higher is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        self.save(fig, "align_uniform.png", "alignment and uniformity on held-out images, last epoch, a point per "
                  "run (SynCo Fig. 4)")

    def class_concentration(self) -> None:
        ratios = []  # per setting: the per-class ratios of all its seeds, pooled
        for group, members in self.settings.items():
            pooled = [r for run in members for r in (run.last("analysis/class_ratio") or [])]
            if pooled:
                ratios.append((group, pooled))
        if not ratios:
            return
        fig, ax = self.plt.subplots(figsize=(max(4, 0.9 * len(ratios) + 2), 4))
        boxes = ax.boxplot([r for _, r in ratios], patch_artist=True)
        for box, (group, _) in zip(boxes["boxes"], ratios):
            box.set_facecolor(self.colour[group])
            box.set_alpha(0.5)
        ax.set_xticks(range(1, len(ratios) + 1), [self.label(g) for g, _ in ratios], rotation=30, fontsize=7,
                      ha="right")
        ax.set_ylabel("inter / intra class distance")
        ax.grid(alpha=0.3, axis="y")
        self.save(fig, "class_concentration.png", "class concentration per class, last epoch, the seeds of a setting "
                  "pooled (SynCo Fig. 5)")


def _continual(figures: _Figures) -> None:
    """Continual streams: the accuracy matrix R of the first run of each setting as a heat map, and the
    accuracy on every task after each task (one colour per setting, mean over seeds)."""
    import numpy as np

    streams = [run for run in _first_of_each_setting(figures.runs) if run.last("continual/R_matrix")]
    if not streams:
        return
    plt = figures.plt
    fig, axes = plt.subplots(1, len(streams), figsize=(3.2 * len(streams), 3), squeeze=False)
    for ax, run in zip(axes[0], streams):
        matrix = np.array(run.last("continual/R_matrix"))
        image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_title(figures.label(run.group), fontsize=8)
        ax.set_xlabel("task j (evaluated)")
        ax.set_ylabel("after task i")
    fig.colorbar(image, ax=axes[0][-1], shrink=0.8, label="kNN top-1 %")
    figures.save(fig, "continual_R.png", "accuracy matrix R[i][j] of continual streams (first seed of each setting)")
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, members in figures.settings.items():
        rows = [np.array(m.last("continual/R_matrix")).mean(axis=1) for m in members if m.last("continual/R_matrix")]
        if rows:
            mean = np.mean(rows, axis=0)
            ax.plot(range(1, len(mean) + 1), mean, marker="o", color=figures.colour[group], label=figures.label(group))
    ax.set_xlabel("after task")
    ax.set_ylabel("mean kNN top-1 over all tasks (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    figures.save(fig, "continual_curves.png", "mean accuracy over all tasks after each task, per setting")


def write_figures(runs: list[Run], out: Path) -> list[tuple[str, str]]:
    """Write every figure the runs have metrics for into ``out``; returns (file name, caption) pairs."""
    figures = _Figures(runs, out)
    figures.lines([("eval/knn_top1", "")], "kNN top-1 (%)", "knn.png", "kNN top-1 accuracy on the test set")
    figures.lines([("train/loss", "")], "InfoNCE loss (epoch mean)", "loss.png", "training loss")
    figures.lines([("analysis/proxy_acc", " (real + synthetic)"), ("analysis/proxy_acc_real", " (real only)")],
                  "share of queries whose key wins", "proxy.png", "proxy-task accuracy (MoCHI; SynCo Fig. 3)")
    figures.lines([("analysis/fn_rate_hard", " (N hardest)"), ("analysis/fn_rate_sources", " (synthetic sources)")],
                  "share from the query's class", "false_negatives.png", "false-negative rates of the hard negatives")
    figures.lines([(f"analysis/assumption1/{name}", f" ({label})") for name, label in _HSCL_SETTINGS],
                  "share of anchors", "assumption1.png",
                  "anchors satisfying H-SCL's Assumption 1 on held-out images, per setting (H-SCL Fig. 4)")
    figures.lines([("analysis/loss/ucl", " UCL"), ("analysis/loss/hucl/beta_1", " H-UCL, beta 1"),
                   ("analysis/loss/scl", " SCL"), ("analysis/loss/hscl/beta_1", " H-SCL, beta 1")],
                  "loss on held-out images", "four_losses.png",
                  "UCL, H-UCL, SCL and H-SCL (beta = 1) of the same held-out batches, whatever was trained "
                  "(H-SCL Fig. 5; the other settings are in metrics.jsonl)")
    figures.lines([("analysis/isotropy", "")], "min Z / max Z", "isotropy.png",
                  "isotropy of the held-out embeddings (SCHaNe; 1 = isotropic, e^-2 is the floor for unit vectors)")
    figures.hardness()
    figures.strategies()
    figures.align_uniform()
    figures.class_concentration()
    _continual(figures)
    return figures.written
