"""``fedray bench lw-cost``: is an LW round as cheap in wall time as the FLOPs the ledger counts say?

Per preset (``default``: 2 stages; ``lw6``: 6 stages), FedMML and LW run the same schedule side by side on one local
Ray (order alternating between repeats). Per LW stage: the median wall time of a steady round (not the stage's first,
which loads the frozen prefix and fills the cache) and the FLOPs the ledger charges that round, each divided by
FedMML's (one stage: the whole model every round, so all its steady rounds are the reference).
``gap`` = wall ratio / FLOPs ratio: 1 means LW saves exactly the time its FLOPs say; above 1 means fixed per-round
costs (or recomputed prefixes) eat the saving.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fedray.bench.common import median, silent

PRESETS = {"default": ["train.rounds=[4,4]"], "lw6": ["train.rounds=[3,3,3,3,3,3]"]}


def run(repeats: int = 3, presets: tuple[str, ...] = tuple(PRESETS)) -> dict[str, Any]:
    from fedray.api import run_experiment
    from fedray.backend import ray_session
    from fedray.config import load_config

    report: dict[str, Any] = {"bench": "lw-cost", "repeats": repeats, "loadavg_before": os.getloadavg()[0],
                              "presets": {}}
    methods = ("fedmml", "lw")
    with ray_session(load_config(preset="default").runtime), tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        for preset in presets:
            cfgs = {m: load_config(preset=preset, overrides=[*PRESETS[preset], f"train.method={m}",
                                                             "train.eval_every=1000", f"name=bench-{m}"])
                    for m in methods}
            wall: dict[str, dict[int, list[float]]] = {m: {} for m in methods}
            flops: dict[str, dict[int, list[int]]] = {m: {} for m in methods}
            for i in range(repeats):
                for m in methods if i % 2 == 0 else methods[::-1]:
                    rows = run_experiment(cfgs[m], os.path.join(tmp, f"{preset}-{m}-{i}"), progress=silent).rows
                    for r in rows:
                        if r["stage_round"] > 1:
                            wall[m].setdefault(r["stage"], []).append(r["time/round_s"])
                            flops[m].setdefault(r["stage"], []).append(r["res/flops"])
                print(f"{preset}: repeat {i + 1}/{repeats} done", flush=True)
            stages = []
            # FedMML trains the whole model in one stage: every round of it is the reference for every LW stage
            ref_wall = median([t for v in wall["fedmml"].values() for t in v])
            ref_flops = median([f for v in flops["fedmml"].values() for f in v])
            for s in sorted(wall["lw"]):
                w = {"fedmml": ref_wall, "lw": median(wall["lw"][s])}
                f = {"fedmml": ref_flops, "lw": median(flops["lw"][s])}
                lw_rel = [x / w["fedmml"] for x in wall["lw"][s]]
                stages.append({"stage": s, "round_s": w, "flops": f, "wall_ratio": w["lw"] / w["fedmml"],
                               "wall_ratio_min": min(lw_rel), "wall_ratio_max": max(lw_rel),
                               "flops_ratio": f["lw"] / f["fedmml"], "gap": (w["lw"] / w["fedmml"]) / (f["lw"] / f["fedmml"]),
                               "rounds": len(wall["lw"][s])})
            report["presets"][preset] = stages
            print(f"\n{preset}: LW / FedMML per stage (steady rounds, medians of {stages[0]['rounds']})")
            print(f"{'stage':>5} {'fedmml s':>9} {'lw s':>7} {'wall ratio (min-max)':>22} {'FLOPs ratio':>11} {'gap':>5}")
            for st in stages:
                print(f"{st['stage']:>5} {st['round_s']['fedmml']:>9.3f} {st['round_s']['lw']:>7.3f} "
                      f"{st['wall_ratio']:>8.3f} ({st['wall_ratio_min']:.3f}-{st['wall_ratio_max']:.3f}) "
                      f"{st['flops_ratio']:>11.3f} {st['gap']:>5.2f}", flush=True)
    report["loadavg_after"] = os.getloadavg()[0]
    print(f"(load average {report['loadavg_before']:.2f} -> {report['loadavg_after']:.2f})")
    return report
