"""Sweep plots with matplotlib's headless Agg backend: one figure per question a researcher asks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fedray.schedules import METHODS  # noqa: E402
from fedray.tune.trials import Trial, is_missing  # noqa: E402

log = logging.getLogger("fedray")
COLOURS = {name: m.colour for name, m in METHODS.items()}


def make_plots(trials: list[Trial], rows: list[dict[str, Any]], metric: str, out: Path) -> list[str]:
    """Write every plot the data supports into ``out``; returns the PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [r | {"label": _label(t)} for r, t in zip(rows, trials)]  # for the plots only
    files = []
    name = metric.replace("/", "_")
    if len({r["data.partition.beta"] for r in rows}) > 1:
        files.append(_vs_beta(rows, metric, out / f"{name}_vs_beta.png"))
    for key, label, scale in (("comm_mb", "total communication (MB)", "log"),
                              ("peak_memory_mb", "peak client memory (MiB)", "linear"),
                              ("gflops", "client training GFLOPs", "log")):
        if any(not is_missing(r.get(key)) for r in rows):
            files.append(_vs_resource(rows, metric, key, label, scale, out / f"{name}_vs_{key}.png"))
        else:
            log.info("report: no %s recorded; skipping the plot against it", key)
    if any(any(metric in row for row in t.rows) for t in trials):
        files.append(_curves(trials, metric, out / f"{name}_vs_round.png"))
    return [str(f) for f in files]


def _label(trial: Trial) -> str:
    """A trial's swept values other than the method (``stages=3``), else its name."""
    shown = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in trial.params.items() if k != "train.method"]
    return ", ".join(shown) or trial.name


def _method_label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _legend(ax: Any, **kwargs: Any) -> None:
    """A legend only over labelled artists: matplotlib warns "No artists with labels" on an empty one
    (a method whose trials all lack the metric draws nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _vs_beta(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Final metric against Dirichlet β (log scale): one line per method, mean over trials at each β."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in sorted({r["train.method"] for r in rows}):
        pts = [(r["data.partition.beta"], r[metric]) for r in rows
               if r["train.method"] == method and not is_missing(r.get(metric))]
        if not pts:
            continue
        betas = sorted({b for b, _ in pts})
        means = [sum(v for b2, v in pts if b2 == b) / sum(1 for b2, _ in pts if b2 == b) for b in betas]
        colour = COLOURS.get(method)
        ax.scatter([b for b, _ in pts], [v for _, v in pts], color=colour, alpha=0.4, s=18)
        ax.plot(betas, means, marker="o", color=colour, label=_method_label(method))
    ax.set_xscale("log")
    ax.set_xlabel("Dirichlet β (smaller = more heterogeneous)")
    ax.set_ylabel(f"final {metric}")
    ax.set_title(f"final {metric} vs data heterogeneity")
    _legend(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _vs_resource(rows: list[dict[str, Any]], metric: str, key: str, label: str, scale: str, path: Path) -> Path:
    """Final metric against a resource total, one point per trial, one colour per method."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in sorted({r["train.method"] for r in rows}):
        mine = [r for r in rows
                if r["train.method"] == method and not is_missing(r.get(key)) and not is_missing(r.get(metric))]
        if mine:
            ax.scatter([r[key] for r in mine], [r[metric] for r in mine], color=COLOURS.get(method),
                       label=_method_label(method), s=36, alpha=0.85)
        for r in mine if len(rows) <= 24 else []:  # say which trial each point is (swept values)
            ax.annotate(r.get("label", ""), (r[key], r[metric]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=COLOURS.get(method))
    xs = [r[key] for r in rows if not is_missing(r.get(key)) and r[key] > 0]
    if scale == "log" and xs and max(xs) / min(xs) > 10:  # a log axis only when totals span decades
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(f"final {metric}")
    ax.set_title(f"final {metric} vs {label.split(' (')[0]}")
    _legend(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _curves(trials: list[Trial], metric: str, path: Path) -> Path:
    """Metric per round, one panel per method, one line per trial; dashed lines mark stage boundaries."""
    methods = sorted({t.method for t in trials})
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3.8), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        group = [t for t in trials if t.method == method]
        cmap = plt.get_cmap("viridis", max(2, len(group)))
        for i, t in enumerate(group):
            pts = [(r["round"], r[metric]) for r in t.rows if not is_missing(r.get(metric))]
            if not pts:
                continue
            colour = cmap(i)
            ax.plot(*zip(*pts), marker=".", color=colour, label=_label(t))
            for prev, row in zip(t.rows, t.rows[1:]):
                if row["stage"] != prev["stage"]:  # a new stage starts after round prev
                    ax.axvline(prev["round"] + 0.5, color=colour, linestyle="--", alpha=0.5, linewidth=1)
        ax.set_title(f"{_method_label(method)} (dashed: stage boundaries)", fontsize=10)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(group) <= 8:
            _legend(ax, fontsize=7)
    axes[0][0].set_ylabel(metric)
    return _save(fig, path)
