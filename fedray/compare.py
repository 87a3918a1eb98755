"""``fedray compare``: the registered methods (fedmml, lw, prog) on one config, side by side, with a legend."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fedray.config import ExperimentConfig
from fedray.rundir import RunDir
from fedray.schedules import METHODS, REFERENCE

if TYPE_CHECKING:
    from fedray.api import RunResult
    from fedray.progress import Progress

# Column keys (comparison.csv) and the headers printed and in the README (a test keeps the README's equal).
HEADERS = {
    "method": "method",
    "i2t_r1": "i2t R@1", "i2t_r5": "i2t R@5", "i2t_r10": "i2t R@10",
    "t2i_r1": "t2i R@1", "t2i_r5": "t2i R@5", "t2i_r10": "t2i R@10",
    "accuracy": "accuracy", "macro_f1": "macro-F1",  # model.task: classification
    "comm_mb": "comm MB", "comm_vs_fedmml": "comm ×",
    "gflops": "GFLOPs", "flops_vs_fedmml": "FLOPs ×",
    "train_mem_mib": "train mem MiB (modelled)", "mem_vs_fedmml": "mem ×",
    "wall_s": "wall s",
}
RETRIEVAL = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")
COLUMNS = ("method", *RETRIEVAL, "comm_mb", "comm_vs_fedmml", "gflops", "flops_vs_fedmml", "train_mem_mib",
           "mem_vs_fedmml", "wall_s")
# summary["resources"] key, ratio column prefix, unit, value column
RESOURCE_COLUMNS = (("comm_bytes", "comm", 1e6, "comm_mb"), ("flops", "flops", 1e9, "gflops"),
                    ("peak_memory_bytes", "mem", 2**20, "train_mem_mib"))
LEGEND = (
    "i2t / t2i: image-to-text / text-to-image retrieval on the held-out pairs; R@K: the share of queries whose own "
    "pair is among the K nearest candidates (chance: K / held-out pairs).",
    "comm MB: bytes exchanged between the server and all clients, both ways, whole run (1 MB = 10^6 bytes). "
    "GFLOPs: training FLOPs of all clients, whole run.",
    "train mem MiB (modelled): the largest training memory of one client in one step, from fedray's memory model "
    "(parameters, gradients, AdamW state, saved activations); not process memory.",
    "×: FedMML's figure ÷ the method's (1.7 = 1.7 times less than FedMML). "
    "wall s: the run's seconds on this machine.",
)
CLASSIFICATION_LEGEND = ("accuracy: share of held-out samples classified right; macro-F1: F1 averaged over classes.",)


def comparison_rows(results: dict[str, RunResult]) -> list[dict[str, Any]]:
    """One row per method with final metrics, resources (comm, FLOPs, modelled memory) and their ratios to FedMML."""
    base = results[REFERENCE].summary["resources"] if REFERENCE in results else {}
    rows = []
    for method, res in results.items():
        s = res.summary
        used = s["resources"]
        keys = ("accuracy", "macro_f1") if "accuracy" in s["metrics"] else RETRIEVAL  # supervised task
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


def to_markdown(rows: list[dict[str, Any]], headers: dict[str, str] | None = None) -> str:
    """A Markdown table of ``rows``; ``headers`` maps column keys to the printed names (default: the keys)."""
    cols = list(rows[0]) if rows else list(COLUMNS)
    names = [(headers or {}).get(c, c) for c in cols]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def legend(rows: list[dict[str, Any]]) -> str:
    """What the comparison table's columns mean, one line per group of columns."""
    lines = LEGEND if not rows or "i2t_r1" in rows[0] else CLASSIFICATION_LEGEND + LEGEND[1:]
    return "\n".join(lines) + "\n"


def to_text(rows: list[dict[str, Any]]) -> str:
    """The comparison as printed and written to comparison.md: the table, then its legend."""
    return to_markdown(rows, HEADERS) + "\n" + legend(rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def compare(cfg: ExperimentConfig, out: str | None = None, *, address: str | None = None,
            progress: Callable[[str], None] | None = None,
            display: Progress | None = None, methods: tuple[str, ...] = tuple(METHODS)
            ) -> tuple[str, list[dict[str, Any]]]:
    """Run each of ``methods`` (default: every registered one) on ``cfg`` into ``out/<method>``; write
    comparison.csv and .md. Any other key (``train.strategy``, ...) is the config's, for every method.

    ``display`` (a :class:`fedray.progress.Progress`) shows method i of n and its rounds; without
    it, ``progress`` gets the runs' one-line-per-round output.
    """
    from fedray.api import run_experiment
    from fedray.schedules import build_schedule

    root = RunDir.create(out, f"compare-{cfg.name}", storage=cfg.data.storage)
    session: Any = nullcontext()
    if cfg.runtime.backend == "ray":  # one Ray start for all three runs
        from fedray.backend import ray_session

        session = ray_session(cfg.runtime, address)
    results: dict[str, RunResult] = {}
    with session:
        for i, method in enumerate(methods, 1):
            run_cfg = replace(cfg, train=replace(cfg.train, method=method))
            watch: dict[str, Any] = {"progress": progress}
            if display is not None:
                display.begin(method, sum(s.rounds for s in build_schedule(run_cfg)), i, len(methods))
                watch = {"progress": lambda _: None, "on_record": display.record}
            results[method] = run_experiment(run_cfg, f"{root.path}/{method}", address=address, **watch)
    if display is not None:
        display.close()
    rows = comparison_rows(results)
    root.write_text("comparison.csv", to_csv(rows))
    root.write_text("comparison.md", to_text(rows))
    return str(root.path), rows
