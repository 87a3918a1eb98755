"""A device fleet on a real local Ray: availability, cohorts, the clock and the weights equal the in-process run."""

from __future__ import annotations

import numpy as np

from fedray.api import run_experiment

HALF_ONLINE = ("fleet.classes={a: {share: 0.5, memory_mib: 4096, gflops: 1, downlink_mbps: 2, uplink_mbps: 1, "
               "availability: 0.5}, b: {share: 0.5, memory_mib: 4096, gflops: 5, downlink_mbps: 20, uplink_mbps: 5}}")
ARGS = ["data.num_clients=4", "train.participation=0.5", "train.rounds=[2, 2]", "runtime.torch_threads=1",
        "fleet.over_selection=0.5", HALF_ONLINE]


def test_a_fleet_runs_identically_on_ray_and_in_process(ray_local, tiny, tmp_path):
    runs = {b: run_experiment(tiny(*ARGS, f"runtime.backend={b}"), str(tmp_path / b), progress=lambda _: None)
            for b in ("local", "ray")}
    sim = {b: [{k: v for k, v in r.items() if k.startswith("sim/") or k == "cohort"} for r in res.rows]
           for b, res in runs.items()}
    assert sim["ray"] == sim["local"] and sim["local"][-1]["sim/clock_s"] > 0
    assert any(r["sim/online"] < 4 for r in sim["local"])  # availability 0.5 took some clients offline
    assert all(np.array_equal(runs["ray"].state[k], runs["local"].state[k]) for k in runs["local"].state)
    assert (tmp_path / "ray" / "clients.jsonl").read_text().count('"device"') == \
        (tmp_path / "local" / "clients.jsonl").read_text().count('"device"') > 0
