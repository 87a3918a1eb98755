"""``fedray bench prefix-cache``: lw round time per stage with the frozen-prefix cache on vs off (lw6 preset).

Both modes run in this process, alternating per repeat, on the in-process backend (the cache
lives in the client host, the same object the Ray actors wrap), with the same threads. One thread
by default: on a shared, oversubscribed machine a 2-thread torch step was measured 40x slower than a
1-thread one (OpenMP threads waiting on each other), which would swamp the comparison.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from fedray.bench.common import median, silent


def _rounds(mode: str, threads: int) -> list[dict[str, Any]]:
    from fedray.api import run_experiment
    from fedray.config import load_config

    cfg = load_config(preset="lw6", overrides=["runtime.backend=local", f"runtime.torch_threads={threads}",
                                                f"runtime.cache_prefix={mode}", f"name=bench-cache-{mode}"])
    with tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        rows = run_experiment(cfg, os.path.join(tmp, "run"), progress=silent).rows
    return rows


def run(repeats: int = 3, threads: int | None = None) -> dict[str, Any]:
    threads = threads or 1
    before = torch.get_num_threads()
    times: dict[str, dict[tuple[int, int], list[float]]] = {"on": {}, "off": {}}
    try:
        for i in range(repeats):
            for mode in ("off", "on"):
                for r in _rounds(mode, threads):
                    times[mode].setdefault((r["stage"], r["stage_round"]), []).append(r["time/round_s"])
            print(f"repeat {i + 1}/{repeats} done", flush=True)
    finally:
        torch.set_num_threads(before)
    stages = sorted({s for s, _ in times["on"]})
    per_stage = []
    for s in stages:
        first = {m: median(times[m][(s, 1)]) for m in times}
        later = {m: median([t for (st, r), v in times[m].items() if st == s and r > 1 for t in v]) for m in times}
        per_stage.append({"stage": s, "first_round_s": first, "steady_round_s": later,
                          "speedup_steady": later["off"] / later["on"], "speedup_first": first["off"] / first["on"]})
        print(f"stage {s}: steady round off {later['off']:.3f} s, on {later['on']:.3f} s -> "
              f"{later['off'] / later['on']:.2f}x; first round (fills/extends the cache) off {first['off']:.3f} s, "
              f"on {first['on']:.3f} s -> {first['off'] / first['on']:.2f}x", flush=True)
    last = per_stage[-1]["speedup_steady"]
    print(f"last stage: {last:.2f}x faster with the cache (target >= 2x); {threads} threads, {repeats} repeats")
    return {"bench": "prefix-cache", "preset": "lw6", "threads": threads, "repeats": repeats, "stages": per_stage,
            "last_stage_speedup": last}
