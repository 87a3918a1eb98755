"""``fedray bench overhead``: a fedray round against the bare-torch limit of the same client work on the same cores.

The limit: the cohort's local training with nothing of fedray's runtime around it: ``P`` plain worker processes
(spawned, no Ray), each holding its share of the clients (packed as fedray packs them) in one ClientHost and
training them one after another with ``T`` torch threads, the parent summing their updates (FedAvg) over pipes.
Both ``P = cores, T = 1`` and ``P = 1, T = cores`` are measured; the faster is the limit.
fedray runs the same schedule on a local Ray in each packing measured (actors x threads); its default is one of
them (``clients_per_actor: auto``, the threads from the CPUs each actor gets).
Same clients, data, seeds and steps on both sides; evaluation is outside both timings; steady-state rounds only
(after the first of each stage, which loads the prefix and fills the cache). Start-up is ``fedray bench startup``
(launch to the first round on the real command line). Variants alternate their order between repeats: the machine's load drifts.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np

from fedray.bench.common import median, now, silent
from fedray.client import ClientHost, FrozenValues, RoundTask, load_state, to_numpy
from fedray.config import ExperimentConfig, load_config
from fedray.model import build_model
from fedray.packing import pack_clients
from fedray.plan import plan_run
from fedray.schedules import build_schedule
from fedray.server.rounds import cohort_size
from fedray.training import combine, weighted_mean


def startup_seconds(timeout: float = 300.0) -> dict[str, float]:
    """Seconds from launching ``fedray run --preset tiny`` to its first round's line, and to its exit."""
    from fedray.bench.common import cpu_seconds, process_tree

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


def _bare_worker(conn: Any, cfg: ExperimentConfig, info: Any, rows: dict[int, np.ndarray], device: str,
                 threads: int) -> None:
    """A plain process holding some clients: train what it is sent, send back the partial sum."""
    host = ClientHost(cfg, info, rows, device, threads)
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        task, payload, frozen = msg
        conn.send(host.train(task, payload, frozen).partial)


def bare_rounds(cfg: ExperimentConfig, procs: int, threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """The bare-torch limit: ``procs`` worker processes x ``threads`` threads, FedAvg in this process."""
    plan = plan_run(cfg)
    packs = pack_clients([len(r) for r in plan.client_rows], math.ceil(len(plan.client_rows) / procs))
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker, as a Ray worker is
    pipes, workers = [], []
    for members in packs:
        parent, child = ctx.Pipe()
        workers.append(ctx.Process(target=_bare_worker, daemon=True, args=(
            child, cfg, plan.info, {c: plan.client_rows[c] for c in members}, device, threads)))
        workers[-1].start()
        pipes.append(parent)
    try:
        for pipe in pipes:
            pipe.recv()  # start-up is not part of a round
        glob = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed)
        k = cohort_size(len(plan.client_rows), cfg.train.participation)
        rng = np.random.default_rng(cfg.train.seed)
        out, round_idx = [], 0
        for spec in build_schedule(cfg):
            glob.set_depths(spec.depths)
            frozen = FrozenValues(spec.index, to_numpy(glob.state(spec.frozen))) if spec.frozen else None
            holding: set[int] = set()  # hosts that hold this stage's frozen values
            for r in range(spec.rounds):
                start = now()
                cohort = {int(c) for c in rng.choice(len(plan.client_rows), k, replace=False)}
                payload = to_numpy(glob.state(spec.exchanged))
                busy = []
                for h, (pipe, members) in enumerate(zip(pipes, packs)):
                    mine = tuple(sorted(cohort.intersection(members)))
                    if mine:
                        # a stage's frozen values travel once per host, as fedray delivers them (the host keeps them)
                        pipe.send((RoundTask(h, round_idx, spec, mine), payload, None if h in holding else frozen))
                        holding.add(h)
                        busy.append(pipe)
                mean = weighted_mean(combine([pipe.recv() for pipe in busy]), payload)
                load_state(glob, mean)
                out.append({"stage": spec.index + 1, "stage_round": r + 1, "round_s": now() - start})
                round_idx += 1
        return out
    finally:
        for pipe in pipes:
            try:
                pipe.send(None)
            except OSError:  # that worker is gone already: the error being raised says why
                pass
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()


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


def packings(cores: int, clients: int) -> dict[str, tuple[int | str, int | None]]:
    """fedray's packings to measure, by label: (clients_per_actor, torch_threads)."""
    out: dict[str, tuple[int | str, int | None]] = {f"{clients} actors x 1 thread": (1, 1),
                                                    "default (auto)": ("auto", None)}
    for actors in (2 * cores, 4 * cores):
        if actors < clients:
            out[f"{actors} actors x 1 thread"] = (math.ceil(clients / actors), 1)
    if cores > 1:
        out[f"1 actor x {cores} threads"] = (clients, cores)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def run(repeats: int = 3, device: str = "cpu", preset: str = "default", method: str = "fedmml",
        rounds: tuple[int, ...] = (3, 3)) -> dict[str, Any]:
    """Per repeat: each fedray packing and each bare-torch layout, order alternating (start-up: bench startup)."""
    from fedray.backend import ray_session
    from fedray.backend.session import cluster_cpus, cluster_gpus

    report: dict[str, Any] = {"bench": "overhead", "device": device, "repeats": repeats, "preset": preset,
                              "method": method, "rounds": list(rounds), "loadavg_before": os.getloadavg()}
    overrides = ["name=bench-overhead", "train.eval_every=1000", f"train.method={method}",
                 f"train.rounds=[{','.join(map(str, rounds))}]"]
    if device == "cuda":
        overrides += ["runtime.client_gpus=0.25"]  # four client actors per GPU
    base = load_config(preset=preset, overrides=overrides)
    with ray_session(base.runtime):
        cores = max(1, int(cluster_cpus()))
        if device == "cuda" and cluster_gpus() == 0:
            raise RuntimeError("--device cuda: the Ray cluster has no GPU")
        clients = base.data.num_clients
        fed = packings(cores, clients)
        bare = {f"{cores} procs x 1 thread": (cores, 1)} | ({f"1 proc x {cores} threads": (1, cores)} if cores > 1
                                                            else {})
        times: dict[str, list[float]] = {name: [] for name in [*fed, *bare]}
        for i in range(repeats):
            order = list(times) if i % 2 == 0 else list(times)[::-1]
            for name in order:
                if name in fed:
                    cpa, threads = fed[name]
                    rt = replace(base.runtime, clients_per_actor=cpa, torch_threads=threads)
                    rows, _ = fedray_rounds(replace(base, runtime=rt))
                else:
                    rows = bare_rounds(base, *bare[name], device=device)
                times[name] += steady(rows)
            print(f"repeat {i + 1}/{repeats}: " + "; ".join(f"{n} {median(times[n][-len(steady(rows)):]):.3f} s"
                                                             for n in times), flush=True)
    limit_name = min(bare, key=lambda n: median(times[n]))
    limit = median(times[limit_name])
    report |= {"cores": cores, "clients": clients, "limit": {"layout": limit_name, "round_s": _stats(times[limit_name])},
               "bare": {n: _stats(times[n]) for n in bare},
               "fedray": {n: {**_stats(times[n]), "ratio": median(times[n]) / limit,
                              "ratio_min": min(times[n]) / limit, "ratio_max": max(times[n]) / limit}
                          for n in fed},
               "loadavg_after": os.getloadavg()}
    print(f"\n{preset}, {method}, {clients} clients, {cores} cores; steady rounds, {repeats} repeats "
          f"(load average before {report['loadavg_before'][0]:.2f}, after {report['loadavg_after'][0]:.2f})")
    print(f"{'layout':<28} {'s/round median (min-max)':>26} {'x limit':>8}")
    for n in bare:
        s = report["bare"][n]
        print(f"bare torch {n:<17} {s['median']:>10.3f} ({s['min']:.3f}-{s['max']:.3f}) "
              f"{s['median'] / limit:>8.2f}" + ("   <- the limit" if n == limit_name else ""))
    for n, f in report["fedray"].items():
        print(f"fedray {n:<21} {f['median']:>10.3f} ({f['min']:.3f}-{f['max']:.3f}) {f['ratio']:>8.2f}")
    return report
