"""Sweep reports: one row per trial (swept values, final metrics, resources) and the plots. No Ray.

Reads only what runs leave on disk (``fedray.tune.trials``), so it works on sweep directories, on
``fedray compare`` directories and on plain ``fedray run`` directories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedray.compare import mean_interval, to_csv, to_markdown
from fedray.rundir import RunDir
from fedray.tune.trials import Trial, load_trials, lookup


STANDARD = ("train.method", "data.partition.kind", "data.partition.beta", "train.stages", "train.rounds")


def table(trials: list[Trial], swept: list[str]) -> list[dict[str, Any]]:
    """One row per trial: config values (swept ones first), status, final metrics, resources, times."""
    keys = swept + [k for k in STANDARD if k not in swept]
    metric_keys: list[str] = []
    finals = [t.final() for t in trials]
    for f in finals:
        metric_keys += [k for k in f if k.startswith(("eval/", "train/")) and k not in metric_keys]
    rows = []
    for t, f in zip(trials, finals):
        row: dict[str, Any] = {"trial": t.name, "status": t.status}
        row.update({k: _cell(lookup(t.config, k)) for k in keys})
        row["rounds"] = t.rows[-1]["round"] if t.rows else 0
        row.update({k: f.get(k) for k in sorted(metric_keys)})
        row["comm_mb"] = f["comm_bytes"] / 1e6 if f.get("comm_bytes") else None
        row["gflops"] = f["flops"] / 1e9 if f.get("flops") else None
        row["peak_memory_mb"] = f["peak_memory_bytes"] / 2**20 if f.get("peak_memory_bytes") else None
        row["wall_s"] = (t.summary or {}).get("wall_time_s")
        row["started_at"], row["finished_at"] = t.started_at, t.finished_at
        rows.append(row)
    return rows


def _small(value: Any) -> Any:
    """Tiny floats (learning rates) in scientific notation: the table's 3 decimals would show 0.000."""
    return f"{value:.2e}" if isinstance(value, float) and 0 < abs(value) < 1e-3 else value


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def write_report(paths: list[str], out: str, metric: str | None = None) -> list[str]:
    """Write ``trials.csv``, ``trials.md`` and ``plots/*.png`` into ``out``; returns the files written."""
    from fedray.tune.plots import make_plots  # matplotlib only when a report is written

    trials, swept = load_trials(paths)
    if not trials:
        raise ValueError(f"{', '.join(paths)}: no runs to report")
    rows = table(trials, swept)
    target = RunDir(Path(out))
    target.path.mkdir(parents=True, exist_ok=True)
    target.write_text("trials.csv", to_csv(rows))
    times = ("started_at", "finished_at")  # unix times, for the CSV only
    target.write_text("trials.md", to_markdown([{k: _small(v) for k, v in r.items() if k not in times} for r in rows]))
    metric = metric or _default_metric(rows)
    files = [str(target.path / "trials.csv"), str(target.path / "trials.md")]
    seeds = over_seeds(rows, swept)
    if seeds:  # the same configuration with several train.seed values: mean ± 95% interval per configuration
        target.write_text("seeds.csv", to_csv(seeds))
        target.write_text("seeds.md", to_markdown([{k: _small(v) for k, v in r.items()} for r in seeds]))
        files += [str(target.path / "seeds.csv"), str(target.path / "seeds.md")]
    return files + make_plots(trials, rows, metric, target.path / "plots")


def over_seeds(rows: list[dict[str, Any]], swept: list[str]) -> list[dict[str, Any]]:
    """Trials that differ only in ``train.seed`` (a sweep with ``train.seed: {grid_search: [...]}``), one row per
    configuration: its swept values, the number of seeds and each figure's mean ± 95% interval. Empty when no
    configuration ran with more than one seed."""
    if "train.seed" not in swept:
        return []
    keys = [k for k in swept if k != "train.seed"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "complete":  # a stopped or failed trial has no final figures to average
            groups.setdefault(tuple(json.dumps(row.get(k)) for k in keys), []).append(row)
    if not any(len(g) > 1 for g in groups.values()):
        return []
    skip = {"rounds", "started_at", "finished_at", "train.seed"}
    return [{**{k: group[0].get(k) for k in keys}, "seeds": len(group),
             **mean_interval([{k: v for k, v in r.items() if k not in skip and k not in keys} for r in group])}
            for group in groups.values()]


def _default_metric(rows: list[dict[str, Any]]) -> str:
    for key in ("eval/i2t_r1", "eval/accuracy"):
        if any(r.get(key) is not None for r in rows):
            return key
    return next((k for k in rows[0] if k.startswith("eval/")), "train/loss")
