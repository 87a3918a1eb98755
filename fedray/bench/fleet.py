"""``fedray bench fleet``: what a device fleet costs in wall time, side by side in one Ray session.

Each repeat runs the same short ``default`` LW run twice, without a fleet and with a fleet of identical, always-on
devices (so both train exactly the same clients on the same data: the difference is the fleet's own work:
measuring each stage's peak memory and step FLOPs while planning, choosing and timing every cohort). The order
alternates between repeats; the figure is the median of the per-repeat ratios (fleet / plain), with min and max.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fedray.bench.common import median, now, silent
from fedray.config import load_config

SHORT = ["train.method=lw", "train.rounds=[2, 2]"]
IDENTICAL = "fleet.classes={same: {share: 1.0, memory_mib: 65536, gflops: 10, downlink_mbps: 20, uplink_mbps: 5}}"


def run(repeats: int = 3, preset: str = "default") -> dict[str, Any]:
    from fedray.api import run_experiment
    from fedray.backend import ray_session

    configs = {"plain": load_config(preset=preset, overrides=SHORT),
               "fleet": load_config(preset=preset, overrides=[*SHORT, IDENTICAL])}
    seconds: dict[str, list[float]] = {"plain": [], "fleet": []}
    with ray_session(configs["plain"].runtime), tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        for i in range(repeats):
            for name in ("plain", "fleet") if i % 2 == 0 else ("fleet", "plain"):
                start = now()
                run_experiment(configs[name], os.path.join(tmp, f"{name}-{i}"), progress=silent)
                seconds[name].append(now() - start)
    ratios = [f / p for f, p in zip(seconds["fleet"], seconds["plain"])]
    load = os.getloadavg()
    report = {"preset": preset, "overrides": SHORT, "repeats": repeats, "plain_s": seconds["plain"],
              "fleet_s": seconds["fleet"], "ratio_median": median(ratios), "ratio_min": min(ratios),
              "ratio_max": max(ratios), "loadavg_1m": load[0]}
    print(f"{preset} {' '.join(SHORT)}: without a fleet {median(seconds['plain']):.1f} s, with one "
          f"{median(seconds['fleet']):.1f} s (medians of {repeats})")
    print(f"fleet / plain wall time: {report['ratio_median']:.3f} median (min {report['ratio_min']:.3f}, max "
          f"{report['ratio_max']:.3f})   (load average {load[0]:.2f})")
    return report
