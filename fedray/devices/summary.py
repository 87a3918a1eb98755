"""Run-level figures from the metrics rows: total simulated time, eligible fraction, time to a target metric."""

from __future__ import annotations

import math
from typing import Any


def reached(metric: str, value: float, target: float) -> bool:
    """A loss (a key ending in ``loss``) reaches its target at or below it; every other metric at or above."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value <= target if metric.rsplit("/", 1)[-1].endswith("loss") else value >= target


def time_to_target(rows: list[dict[str, Any]], target: dict[str, float]) -> dict[str, dict[str, Any] | None]:
    """Per target metric: the first evaluated round that reached it (``round``, and ``sim_s`` = the simulated
    clock after that round when the run has a fleet, else None), or None when the run never reached it."""
    out: dict[str, dict[str, Any] | None] = {}
    for metric, goal in target.items():
        hit = next((r for r in rows if metric in r and reached(metric, r[metric], goal)), None)
        out[metric] = None if hit is None else {"round": hit["round"], "value": hit[metric],
                                                "sim_s": hit.get("sim/clock_s")}
    return out


def fleet_summary(rows: list[dict[str, Any]], num_clients: int) -> dict[str, Any]:
    """``sim_total_s`` (the clock at the end), ``eligible_fraction`` (eligible clients over rounds x population:
    the share of the fleet that could take part in an average round) and the run's kept/cut/dropped totals."""
    sim = [r for r in rows if "sim/clock_s" in r]
    if not sim:
        return {}
    return {
        "sim_total_s": sim[-1]["sim/clock_s"],
        "eligible_fraction": sum(r["sim/eligible"] for r in sim) / (len(sim) * num_clients),
        **{f"{k}_total": sum(r[f"sim/{k}"] for r in sim) for k in ("sampled", "kept", "cut", "dropped")},
        "wasted_bytes": sum(r["sim/wasted_bytes_to_clients"] + r["sim/wasted_bytes_from_clients"] for r in sim),
        "wasted_flops": sum(r["sim/wasted_flops"] for r in sim),
    }


def compare_columns(summary: dict[str, Any], targets: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The ``fedray compare`` columns: simulated hours, eligible fraction, hours to each target (None = never)."""
    out: dict[str, Any] = {}
    if summary:
        out["sim_hours"] = summary["sim_total_s"] / 3600
        out["eligible_frac"] = summary["eligible_fraction"]
    for metric, hit in targets.items():
        name = metric.replace("/", "_")
        out[f"rounds_to_{name}"] = None if hit is None else hit["round"]
        if summary:
            out[f"hours_to_{name}"] = None if hit is None or hit["sim_s"] is None else hit["sim_s"] / 3600
    return out
