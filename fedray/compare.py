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
from fedray.training.gradflow import UPDATE

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
    "sim_hours": "sim hours", "eligible_frac": "eligible share",  # with a fleet (fedray.devices)
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
        # a single run's 95% bootstrap interval over the held-out pairs, where evaluation gave one
        row.update({f"{k}_ci95": s["metrics"][f"{k}_ci95"] for k in keys if s["metrics"].get(f"{k}_ci95") is not None})
        for key, col, unit, name in RESOURCE_COLUMNS:
            value, ref = used.get(key), base.get(key)
            row[name] = value / unit if value is not None else None
            row[f"{col}_vs_fedmml"] = (ref / value) if ref and value else None  # "2.3x less" reads as 2.3
        row["wall_s"] = s["wall_time_s"]
        if "fleet" in s:  # simulated hours, eligible share, rounds/hours to each train.target
            from fedray.devices.summary import compare_columns

            row.update(compare_columns(s["fleet"], s.get("targets") or {}))
        rows.append(row)
    return rows


# Student t quantiles t(0.975, df) for a 95% interval of the mean of n = df + 1 seeds.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    """t(0.975, df), conservatively rounded down to the nearest tabulated df (1.96 beyond 30)."""
    return _T975[max(d for d in _T975 if d <= df)] if df <= 30 else 1.96


def seed_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method from per-seed rows (``runs[s][i]``: seed s, method i): see :func:`mean_interval`."""
    return [{"method": first["method"], "seeds": len(runs), **mean_interval([run[i] for run in runs])}
            for i, first in enumerate(runs[0])]


def mean_interval(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's mean over ``rows`` (None if any row lacks it) and, where it varies, ``<key>_ci95``:
    the half-width of its 95% Student-t interval, t(0.975, n-1) · sd / √n. Earlier ``_ci95`` keys are dropped."""
    out: dict[str, Any] = {}
    for key, first in rows[0].items():
        if key.endswith("_ci95") or not isinstance(first, (int, float)) or isinstance(first, bool):
            continue
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            out[key] = None
            continue
        mean = sum(values) / len(values)
        out[key] = mean
        sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        if sd > 1e-9 * abs(mean):  # a figure the seeds do not change (bytes, FLOPs) has no interval
            out[f"{key}_ci95"] = t975(len(values) - 1) * sd / len(values) ** 0.5
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def to_markdown(rows: list[dict[str, Any]], headers: dict[str, str] | None = None) -> str:
    """A Markdown table of ``rows``; ``headers`` maps column keys to the printed names (default: the keys)."""
    cols = [c for c in rows[0] if not c.endswith("_ci95") and c != "seeds"] if rows else list(COLUMNS)
    names = [(headers or {}).get(c, c) for c in cols]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _cell(row: dict[str, Any], col: str) -> str:
    """A figure, with ``± half-width`` where the row has its 95% interval (metrics; all figures over seeds)."""
    hw = row.get(f"{col}_ci95")
    return _fmt(row[col]) + (f" ± {_fmt(hw)}" if hw is not None and row[col] is not None else "")


def legend(rows: list[dict[str, Any]]) -> str:
    """What the comparison table's columns mean, one line per group of columns."""
    lines = LEGEND if not rows or "i2t_r1" in rows[0] else CLASSIFICATION_LEGEND + LEGEND[1:]
    if rows and "sim_hours" in rows[0]:
        lines = lines + ("sim hours: the run's simulated device time (fleet); eligible share: the average share of the "
                         "fleet whose device could train the round's stage; rounds_to_* / hours_to_*: when the "
                         "global model first reached each train.target (- = never).",)
    if rows and rows[0].get("seeds", 1) > 1:
        lines = lines + (f"mean over {rows[0]['seeds']} seeds (train.seed, +1, ...: partition, initialisation and "
                         "sampling differ) ± the half-width of its 95% Student-t interval.",)
    elif rows and any(k.endswith("_ci95") for k in rows[0]):
        lines = lines + ("± : the half-width of a 95% bootstrap interval over the held-out pairs (one run; "
                         "`--seeds N` gives intervals over seeds).",)
    return "\n".join(lines) + "\n"


def to_text(rows: list[dict[str, Any]]) -> str:
    """The comparison as printed and written to comparison.md: the table, then its legend."""
    return to_markdown(rows, HEADERS) + "\n" + legend(rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))  # rows may differ
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def compare(cfg: ExperimentConfig, out: str | None = None, *, address: str | None = None,
            progress: Callable[[str], None] | None = None,
            display: Progress | None = None, methods: tuple[str, ...] = tuple(METHODS), seeds: int = 1
            ) -> tuple[str, list[dict[str, Any]]]:
    """Run each of ``methods`` (default: every registered one) on ``cfg`` into ``out/<method>``; write
    comparison.csv and .md. Any other key (``train.strategy``, ...) is the config's, for every method.
    ``seeds`` > 1 runs each method with seeds ``train.seed``, +1, ... into ``out/seed-<s>/<method>``, writes
    every run's row to runs.csv and reports means ± 95% intervals (:func:`seed_rows`).

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
    runs: list[list[dict[str, Any]]] = []  # per seed, one row per method
    done, total = 0, seeds * len(methods)
    with session:
        for seed in range(cfg.train.seed, cfg.train.seed + seeds):
            results: dict[str, RunResult] = {}
            for method in methods:
                run_cfg = replace(cfg, train=replace(cfg.train, method=method, seed=seed))
                watch: dict[str, Any] = {"progress": progress}
                done += 1
                if display is not None:
                    label = method if seeds == 1 else f"{method} seed {seed}"
                    display.begin(label, sum(s.rounds for s in build_schedule(run_cfg)), done, total)
                    watch = {"progress": lambda _: None, "on_record": display.record}
                where = f"{root.path}/{method}" if seeds == 1 else f"{root.path}/seed-{seed}/{method}"
                results[method] = run_experiment(run_cfg, where, address=address, **watch)
            runs.append(comparison_rows(results))  # ratios to FedMML within the seed
            if seed == cfg.train.seed:
                first = {m: r.rows for m, r in results.items()}
    if display is not None:
        display.close()
    if seeds == 1:
        rows = runs[0]
    else:
        root.write_text("runs.csv", to_csv([{"seed": cfg.train.seed + k, **row} for k, run in enumerate(runs)
                                            for row in run]))
        rows = seed_rows(runs)
    root.write_text("comparison.csv", to_csv(rows))
    if any(k.startswith(UPDATE) for rows_ in first.values() for row in rows_ for k in row):
        root.write_bytes("gradient_flow.png", gradient_flow_png(first))
    if any("sim/clock_s" in row for rows_ in first.values() for row in rows_):  # a fleet: metric vs device time
        import tempfile

        from fedray.devices.plot import time_to_accuracy_plot

        metric, goal = next(iter(cfg.train.target.items()), (_headline(first), None))
        with tempfile.TemporaryDirectory() as tmp:
            png = time_to_accuracy_plot(first, metric, f"{tmp}/plot.png", goal)
            root.write_bytes("time_to_accuracy.png", png.read_bytes())
    root.write_text("comparison.md", to_text(rows))
    return str(root.path), rows


def _headline(runs: dict[str, list[dict[str, Any]]]) -> str:
    """The metric a time-to-accuracy plot shows without a target: R@10 (image to text), else accuracy."""
    keys = {k for rows in runs.values() for row in rows for k in row}
    return "eval/i2t_r10" if "eval/i2t_r10" in keys else "eval/accuracy"


def gradient_flow_png(rows: dict[str, list[dict[str, Any]]]) -> bytes:
    """One panel per method: the aggregated update's norm per layer group over rounds (log scale); image
    groups in blues, text (or audio) in oranges, heads and fusion in greys, lower blocks lighter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), sharey=True, squeeze=False)
    groups = sorted({k[len(UPDATE):] for records in rows.values() for r in records for k in r if k.startswith(UPDATE)},
                    key=_group_order)  # every method's groups: one colour per group across the panels
    maps = {"image": plt.cm.Blues, "text": plt.cm.Oranges, "audio": plt.cm.Greens}
    per_tower: dict[str, list[str]] = {}
    for g in groups:
        per_tower.setdefault(g.partition(".")[0], []).append(g)
    for ax, (method, records) in zip(axes[0], rows.items()):
        for g in groups:
            tower = g.partition(".")[0]
            members = per_tower[tower]
            shade = 0.35 + 0.6 * members.index(g) / max(1, len(members) - 1)
            color = maps.get(tower, plt.cm.Greys)(shade) if "head" not in g and g != "fusion" else "0.4"
            points = [(r["round"], r[UPDATE + g]) for r in records if r.get(UPDATE + g)]
            if points:
                ax.plot(*zip(*points), marker=".", lw=1, color=color, label=g)
        ax.set_yscale("log")
        ax.set_title(method)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("||aggregated update|| per group (parameters)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines()}  # each group once, in group order
    axes[0][-1].legend([handles[g] for g in groups if g in handles], [g for g in groups if g in handles], fontsize=6,
                       loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _group_order(group: str) -> tuple[str, int, str]:
    """image.embed, image.block.0, ... image.block.10, image.head: blocks in numeric order."""
    tower, _, rest = group.partition(".")
    kind, _, index = rest.partition(".")
    return (tower, {"embed": -1, "block": 0}.get(kind, 1) * 1000 + (int(index) if index.isdigit() else 0), rest)
