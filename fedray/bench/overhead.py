"""``fedray bench overhead``: fedray on a local Ray vs a plain in-process loop doing the same local training.

Both sides train the same clients on the same data for the same steps from the same seed (the
in-process loop uses ClientHost.train directly: no round loop, fleet, Ray or serialization).
Threads: fedray gives each client actor its CPU share (1 thread each); the loop runs with
``loop_threads`` (default 1 and the cluster's CPUs, each measured; the faster is the reference: the
bare compute). On a shared, oversubscribed machine a 2-thread torch step can be many times slower
than a 1-thread one, so both are measured rather than assumed.
Steady-state rounds are those after the first of each stage (which syncs the prefix and fills the
cache); evaluation is outside both timings. Start-up is measured on the real command line.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from fedray.bench.common import GpuSampler, cpu_seconds, median, now, process_tree, silent
from fedray.client import ClientHost, FrozenValues, RoundTask, load_state, to_numpy
from fedray.config import ExperimentConfig, load_config
from fedray.model import build_model
from fedray.plan import plan_run
from fedray.schedules import build_schedule
from fedray.training import weighted_mean


def startup_seconds(timeout: float = 300.0) -> dict[str, float]:
    """Seconds from launching ``fedray run --preset tiny`` to its first round's line, and to its exit."""
    with tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        start = now()
        proc = subprocess.Popen([sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--out",
                                 os.path.join(tmp, "run")], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)
        first = cpu = math.nan
        assert proc.stderr is not None
        for line in proc.stderr:
            if "round   1" in line and math.isnan(first):
                first = now() - start
                cpu = cpu_seconds(process_tree(proc.pid))  # the command, Ray's daemons and the actors, still alive
        proc.wait(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"fedray run --preset tiny failed with exit code {proc.returncode}")
        return {"first_round_s": first, "command_s": now() - start, "cpu_s_to_first_round": cpu}


def inprocess_rounds(cfg: ExperimentConfig, threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """The same schedule as a bare loop: one host holding every client, FedAvg in this process."""
    plan = plan_run(cfg)
    host = ClientHost(cfg, plan.info, dict(enumerate(plan.client_rows)), device, threads)
    glob = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed).to(device)
    clients = tuple(range(cfg.data.num_clients))
    rng = np.random.default_rng(cfg.train.seed)
    k = max(1, min(len(clients), round(cfg.train.participation * len(clients))))
    out, round_idx = [], 0
    for spec in build_schedule(cfg):
        glob.set_depths(spec.depths)
        for r in range(spec.rounds):
            start = now()
            frozen = FrozenValues(spec.index, to_numpy(glob.state(spec.frozen))) if spec.frozen else None
            cohort = tuple(sorted(int(c) for c in rng.choice(len(clients), k, replace=False)))
            payload = to_numpy(glob.state(spec.exchanged))
            result = host.train(RoundTask(0, round_idx, spec, cohort), payload, frozen)  # loads frozen once a stage
            with torch.no_grad():
                load_state(glob, weighted_mean(result.partial, payload))
            out.append({"stage": spec.index + 1, "stage_round": r + 1, "round_s": now() - start})
            round_idx += 1
    return out


def fedray_rounds(cfg: ExperimentConfig) -> tuple[list[dict[str, Any]], float]:
    from fedray.api import run_experiment

    with tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        start = now()
        result = run_experiment(cfg, os.path.join(tmp, "run"), progress=silent)
        wall = now() - start
    return [{"stage": r["stage"], "stage_round": r["stage_round"], "round_s": r["time/round_s"]}
            for r in result.rows], wall


def steady(rows: list[dict[str, Any]]) -> list[float]:
    return [r["round_s"] for r in rows if r["stage_round"] > 1]


def run(repeats: int = 3, device: str = "cpu", variants: tuple[str, ...] = ("1", "auto"),
        loop_threads: tuple[int, ...] | None = None, startup: bool = True) -> dict[str, Any]:
    """Start-up on tiny, then per repeat: fedray (each clients_per_actor variant) and the loop, side by side."""
    from fedray.backend import ray_session
    from fedray.backend.session import cluster_cpus, cluster_gpus

    report: dict[str, Any] = {"bench": "overhead", "device": device, "repeats": repeats}
    starts = [startup_seconds() for _ in range(repeats if startup else 0)]
    report["startup"] = {"first_round_s": [s["first_round_s"] for s in starts],
                         "median_first_round_s": median([s["first_round_s"] for s in starts]),
                         "median_command_s": median([s["command_s"] for s in starts]),
                         "median_cpu_s_to_first_round": median([s["cpu_s_to_first_round"] for s in starts])}
    if starts:
        print(f"start-up (tiny, command start -> first round): median {report['startup']['median_first_round_s']:.1f} s"
              f" over {len(starts)} runs {[round(s['first_round_s'], 1) for s in starts]} (target < 20 s); CPU time of"
              f" all its processes by then: median {report['startup']['median_cpu_s_to_first_round']:.1f} s", flush=True)

    overrides = ["name=bench-overhead", "train.eval_every=1000", "train.total_rounds=8"]
    if device == "cuda":
        overrides += ["runtime.client_gpus=0.25"]  # four client actors per GPU
    base = load_config(preset="default", overrides=overrides)
    with ray_session(base.runtime):
        total_cpus = max(1, int(cluster_cpus()))
        loop_threads = loop_threads or tuple(sorted({1, total_cpus}))
        if device == "cuda" and cluster_gpus() == 0:
            raise RuntimeError("--device cuda: the Ray cluster has no GPU")
        loop: dict[int, list[float]] = {t: [] for t in loop_threads}
        fed: dict[str, list[float]] = {v: [] for v in variants}
        walls: dict[str, list[float]] = {v: [] for v in variants}
        gpu: dict[str, Any] = {}
        for i in range(repeats):
            for v in variants:
                cfg = replace(base, runtime=replace(base.runtime, clients_per_actor=v if v == "auto" else int(v)))
                sampler = GpuSampler() if device == "cuda" else None
                if sampler:
                    with sampler:
                        rows, wall = fedray_rounds(cfg)
                    gpu.setdefault(v, []).append(sampler.summary())
                else:
                    rows, wall = fedray_rounds(cfg)
                fed[v] += steady(rows)
                walls[v].append(wall)
            threads_before = torch.get_num_threads()
            for t in loop_threads:
                if device == "cuda":
                    with GpuSampler() as sampler:
                        loop_rows = inprocess_rounds(base, t, device)
                    gpu.setdefault(f"loop-{t}", []).append(sampler.summary())
                else:
                    loop_rows = inprocess_rounds(base, t, device)
                loop[t] += steady(loop_rows)
            torch.set_num_threads(threads_before)
            n = len(steady(loop_rows))
            print(f"repeat {i + 1}/{repeats}: "
                  + "; ".join(f"loop {t} thread(s) {median(loop[t][-n:]):.3f} s/round" for t in loop_threads) + "; "
                  + "; ".join(f"fedray cpa={v} {median(fed[v][-n:]):.3f} s/round" for v in variants), flush=True)
    report["inprocess_round_s"] = {str(t): median(v) for t, v in loop.items()}
    best_t = min(loop, key=lambda t: median(loop[t]))
    ref = median(loop[best_t])
    report["reference"] = {"loop_threads": best_t, "round_s": ref,
                           **({"gpu_util": gpu[f"loop-{best_t}"]} if f"loop-{best_t}" in gpu else {})}
    report["cluster_cpus"] = total_cpus
    report["fedray"] = {v: {"round_s": median(fed[v]), "ratio": median(fed[v]) / ref,
                            "run_wall_s": median(walls[v]), **({"gpu_util": gpu[v]} if v in gpu else {})}
                        for v in variants}
    for t in loop:
        print(f"in-process loop, {t} thread(s): median steady round {median(loop[t]):.3f} s")
    for v, f in report["fedray"].items():
        print(f"fedray clients_per_actor={v}: median steady round {f['round_s']:.3f} s = {f['ratio']:.2f}x the loop "
              f"(target <= 1.10x); whole run {f['run_wall_s']:.1f} s"
              + (f"; GPU util mean {f['gpu_util'][-1]['mean_pct']:.0f}%" if "gpu_util" in f else ""))
    return report

