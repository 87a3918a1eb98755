"""Runs as a report sees them: sweep trials, ``fedray compare`` runs and plain run directories, read from disk.
No Ray; no config parsing (reports read runs written by other fedray versions too).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedray.tune.metrics import RecordTotals


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
        ledger = RecordTotals()
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


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
