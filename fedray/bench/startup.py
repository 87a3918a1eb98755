"""``fedray bench startup``: how fast the first answers come, next to Python's own floor.

Each case is a fresh process, timed from launch to exit (median of ``repeats``): ``python -c pass`` and
``python -c "import torch"`` (the floors), ``fedray --help``, a config error, ``fedray run --dry-run`` on
the default preset, and launch to the first round's line of ``fedray run --preset tiny``
(:func:`fedray.bench.overhead.startup_seconds`). The load average is reported with the figures: on a
shared machine it moves them more than anything fedray does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from fedray.bench.common import median, now

CLI = [sys.executable, "-m", "fedray.cli"]
CASES = {  # name -> command; exit codes other than the expected one fail the benchmark
    "python -c pass": ([sys.executable, "-c", "pass"], 0),
    "python -c 'import torch'": ([sys.executable, "-c", "import torch"], 0),
    "fedray --help": ([*CLI, "--help"], 0),
    "fedray run --preset nope (config error)": ([*CLI, "run", "--preset", "nope"], 2),
    "fedray run --dry-run --preset default": ([*CLI, "run", "--dry-run", "--preset", "default"], 0),
}
TARGET_S = 1.0  # --help and config errors, on a quiet 2-core machine


def seconds(cmd: list[str], expect: int) -> float:
    """Wall seconds of one run of ``cmd`` (output discarded)."""
    start = now()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = now() - start
    if done.returncode != expect:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}, expected {expect}: {done.stderr[-2000:]}")
    return took


def run(repeats: int = 5, first_round: bool = True) -> dict[str, Any]:
    """Median wall time of each case (and of launch -> first round of tiny) over ``repeats`` runs."""
    from fedray.bench.overhead import startup_seconds

    report: dict[str, Any] = {"bench": "startup", "repeats": repeats, "load_before": os.getloadavg()[0], "cases": {}}
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(repeats):  # interleaved, so a change in load hits every case alike
        for name, (cmd, expect) in CASES.items():
            times[name].append(seconds(cmd, expect))
    if first_round:
        times["fedray run --preset tiny: launch -> first round"] = [startup_seconds()["first_round_s"]
                                                                    for _ in range(repeats)]
    floor = median(times["python -c pass"])
    for name, values in times.items():
        report["cases"][name] = {"median_s": median(values), "runs_s": values, "vs_python": median(values) / floor}
    report["load_after"] = os.getloadavg()[0]
    print(f"fedray start-up, median of {repeats} (load average {report['load_before']:.2f} before, "
          f"{report['load_after']:.2f} after, {os.cpu_count()} CPUs):")
    width = max(len(n) for n in times)
    for name, c in report["cases"].items():
        print(f"  {name:<{width}}  {c['median_s']:7.2f} s  ({c['vs_python']:6.1f}x python -c pass)")
    print(f"  target: --help and config errors under {TARGET_S:g} s on a quiet 2-core machine")
    return report
