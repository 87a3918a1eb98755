"""``fedray compare``: the registered methods (fedmml, lw, prog) on one config, side by side."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from fedray.api import RunResult, run_experiment
from fedray.config import ExperimentConfig
from fedray.rundir import RunDir
from fedray.schedules import METHODS, REFERENCE
COLUMNS = ("method", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "comm_mb", "comm_vs_fedmml",
           "gflops", "flops_vs_fedmml", "peak_mem_mb", "mem_vs_fedmml", "wall_s")
# summary["resources"] key, ratio column prefix, unit, value column
RESOURCE_COLUMNS = (("comm_bytes", "comm", 1e6, "comm_mb"), ("flops", "flops", 1e9, "gflops"),
                    ("peak_memory_bytes", "mem", 2**20, "peak_mem_mb"))


def comparison_rows(results: dict[str, RunResult]) -> list[dict[str, Any]]:
    """One row per method with final metrics, resources (comm, FLOPs, peak memory) and their ratios to FedMML."""
    base = results[REFERENCE].summary["resources"] if REFERENCE in results else {}
    rows = []
    for method, res in results.items():
        s = res.summary
        used = s["resources"]
        keys = ("accuracy", "macro_f1") if "accuracy" in s["metrics"] else COLUMNS[1:7]  # supervised task
        row: dict[str, Any] = {"method": method, **{k: s["metrics"].get(k) for k in keys}}
        for key, col, unit, name in RESOURCE_COLUMNS:
            value, ref = used.get(key), base.get(key)
            row[name] = value / unit if value is not None else None
            row[f"{col}_vs_fedmml"] = (ref / value) if ref and value else None  # "2.3x less" reads as 2.3
        row["wall_s"] = s["wall_time_s"]
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0]) if rows else list(COLUMNS)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def compare(cfg: ExperimentConfig, out: str | None = None, *, address: str | None = None,
            progress: Callable[[str], None] | None = None,
            methods: tuple[str, ...] = tuple(METHODS)) -> tuple[str, list[dict[str, Any]]]:
    """Run each of ``methods`` (default: every registered one) on ``cfg`` into ``out/<method>``; write
    comparison.csv and .md. Any other key (``train.strategy``, ...) is the config's, for every method."""
    root = RunDir.create(out, f"compare-{cfg.name}", storage=cfg.data.storage)
    session: Any = nullcontext()
    if cfg.runtime.backend == "ray":  # one Ray start for all three runs
        from fedray.backend import ray_session

        session = ray_session(cfg.runtime, address)
    results: dict[str, RunResult] = {}
    with session:
        for method in methods:
            run_cfg = replace(cfg, train=replace(cfg.train, method=method))
            results[method] = run_experiment(run_cfg, f"{root.path}/{method}", address=address, progress=progress)
    rows = comparison_rows(results)
    root.write_text("comparison.csv", to_csv(rows))
    root.write_text("comparison.md", to_markdown(rows))
    return str(root.path), rows
