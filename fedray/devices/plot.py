"""The time-to-accuracy plot: a metric against simulated hours, one line per run (method, or method x fleet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402


def time_to_accuracy_plot(runs: dict[str, list[dict[str, Any]]], metric: str, path: str | Path,
                          target: float | None = None) -> Path:
    """Write ``metric`` against the simulated clock (hours) for each run's metrics rows; returns the PNG path.

    Points are the evaluated rounds (rows holding ``metric`` and ``sim/clock_s``); ``target`` draws a dashed
    horizontal line. Raises ValueError when no run has such a row (a run without a fleet has no clock).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = 0
    for label, rows in runs.items():
        pts = [(r["sim/clock_s"] / 3600, r[metric]) for r in rows if metric in r and "sim/clock_s" in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
            drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError(f"no run has rows with both {metric!r} and 'sim/clock_s' (runs need a fleet to have a clock)")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against simulated device time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
