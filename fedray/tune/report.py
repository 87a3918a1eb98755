"""Sweep reports: one row per trial (swept values, final metrics, resources) and the plots. No Ray.

Reads only what runs leave on disk, so it works on sweep directories (``trials/*/trial.json`` +
fedray run directories), on ``fedray compare`` directories and on plain ``fedray run`` directories.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedray.compare import to_csv, to_markdown
from fedray.rundir import RunDir
from fedray.tune.metrics import Ledger


@dataclass
class Trial:
    """One run as the report sees it."""

    name: str
    status: str  # complete | failed | stopped (by the scheduler, or interrupted mid-run)
    config: dict[str, Any] = field(repr=False)  # the run's config.yaml
    params: dict[str, Any]  # swept values (empty for runs outside a sweep)
    rows: list[dict[str, Any]] = field(repr=False)  # metrics.jsonl
    summary: dict[str, Any] | None = field(repr=False)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def method(self) -> str:
        return self.config["train"]["method"]

    def final(self) -> dict[str, Any]:
        """Final metrics and resources: summary.json when the run finished, else its last rows."""
        out: dict[str, Any] = {}
        for row in self.rows:  # the latest value of every metric, and running resource totals
            out.update({k: v for k, v in row.items() if k.startswith(("eval/", "train/"))})
        ledger = Ledger()  # no config parsing: reports read runs written by other fedray versions too
        for row in self.rows:
            ledger.update(row)
        out["comm_bytes"] = self.rows[-1]["comm/total_bytes"] if self.rows else None
        out["flops"] = None if is_missing(ledger.flops) else ledger.flops
        out["peak_memory_bytes"] = None if is_missing(ledger.peak_memory) else ledger.peak_memory
        if self.summary:
            out.update({f"eval/{k}": v for k, v in self.summary.get("metrics", {}).items()})
            out.update({k: v for k, v in self.summary.get("resources", {}).items() if v is not None})
        return out


def load_trials(paths: list[str]) -> tuple[list[Trial], list[str]]:
    """Trials under sweep, compare or run directories, and the swept keys (from sweep.yaml files)."""
    trials: list[Trial] = []
    swept: list[str] = []
    for p in map(Path, paths):
        if (p / "sweep.yaml").is_file():
            spec = yaml.safe_load((p / "sweep.yaml").read_text())
            swept += [k for k in (spec.get("search_space") or {}) if k not in swept]
        if (p / "trials").is_dir():
            trials += [_sweep_trial(t) for t in sorted((p / "trials").iterdir()) if (t / "trial.json").is_file()]
        elif (p / "config.yaml").is_file():
            trials.append(_run(p, p.name, {}))
        elif p.is_dir() and any((c / "config.yaml").is_file() for c in p.iterdir()):
            trials += [_run(c, c.name, {}) for c in sorted(p.iterdir()) if (c / "config.yaml").is_file()]
        else:
            raise ValueError(f"{p}: not a sweep, compare or run directory (no trials/, config.yaml or runs inside)")
    return trials, swept


def _sweep_trial(path: Path) -> Trial:
    info = json.loads((path / "trial.json").read_text())
    runs = [r for r in sorted(path.glob("run*"), key=_attempt) if (r / "config.yaml").is_file()]
    done = [r for r in runs if (r / "summary.json").is_file()]
    trial = _run((done or runs)[-1], info["trial_id"], info["params"])
    trial.started_at, trial.finished_at = info.get("started_at"), info.get("finished_at")
    if "stopped_at_round" in info and trial.status != "complete":
        trial.status = "stopped"  # by the scheduler (ASHA): not a failure
    return trial


def _attempt(run: Path) -> int:
    return int(run.name.partition("~")[2] or 1)


def _run(path: Path, name: str, params: dict[str, Any]) -> Trial:
    config = yaml.safe_load((path / "config.yaml").read_text())
    rows_file = path / "metrics.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line] if rows_file.exists() else []
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else None
    status = "complete" if summary else "failed" if (path / "FAILED").exists() else "stopped"
    return Trial(name, status, config, params, rows, summary)


def lookup(config: dict[str, Any], key: str) -> Any:
    """A dotted key's value in a raw config (``data.partition.beta``)."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


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
    return files + make_plots(trials, rows, metric, target.path / "plots")


def _default_metric(rows: list[dict[str, Any]]) -> str:
    for key in ("eval/i2t_r1", "eval/accuracy"):
        if any(r.get(key) is not None for r in rows):
            return key
    return next((k for k in rows[0] if k.startswith("eval/")), "train/loss")


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))

