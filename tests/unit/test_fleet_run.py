"""Device fleets wired into the round engine (in-process backend): the simulated clock, who trains, and what
the run records; a fleet of identical always-on devices changes nothing."""

from __future__ import annotations

import json

import numpy as np

from fedray.api import resume_experiment, run_experiment

SAME = ("fleet.classes={only: {share: 1.0, memory_mib: 4096, gflops: 10, downlink_mbps: 8, uplink_mbps: 8}}")
BASE = ["runtime.backend=local", "train.rounds=[1, 1]", "data.num_clients=4"]


def test_identical_always_on_devices_train_exactly_as_no_fleet(tiny, tmp_path):
    plain = run_experiment(tiny(*BASE, "train.participation=0.5"), str(tmp_path / "plain"), progress=lambda _: None)
    fleet = run_experiment(tiny(*BASE, "train.participation=0.5", SAME), str(tmp_path / "fleet"),
                           progress=lambda _: None)
    assert all(np.array_equal(plain.state[k], fleet.state[k]) for k in plain.state)
    assert [r["cohort"] for r in plain.rows] == [r["cohort"] for r in fleet.rows] == [2, 2]
    # 8 Mbit/s both ways and 10 GFLOP/s: each round lasts as long as its slowest client's bytes and FLOPs
    clients = [json.loads(line) for line in (tmp_path / "fleet" / "clients.jsonl").read_text().splitlines()]
    for row in fleet.rows:
        mine = [c for c in clients if c["round"] == row["round"]]
        slowest = max((c["bytes_to_client"] + c["bytes_from_client"]) * 8 / 8e6 + c["flops"] / 10e9 for c in mine)
        assert abs(row["sim/round_s"] - slowest) < 1e-6 * slowest and all(c["device"] == "only" for c in mine)
    assert fleet.rows[-1]["sim/clock_s"] == sum(r["sim/round_s"] for r in fleet.rows)
    summary = json.loads((tmp_path / "fleet" / "summary.json").read_text())
    assert summary["fleet"]["sim_total_s"] == fleet.rows[-1]["sim/clock_s"] and "sim/clock_s" not in plain.rows[-1]
    assert "device" not in (tmp_path / "plain" / "clients.jsonl").read_text()


def test_over_selection_trains_only_the_clients_that_report_in_time(tiny, tmp_path):
    slow_fast = ("fleet.classes={slow: {share: 0.5, memory_mib: 4096, gflops: 0.01, downlink_mbps: 1, uplink_mbps: 1},"
                 " fast: {share: 0.5, memory_mib: 4096, gflops: 100, downlink_mbps: 100, uplink_mbps: 100}}")
    result = run_experiment(tiny(*BASE, "train.participation=0.5", "fleet.over_selection=1.0", slow_fast),
                            str(tmp_path / "run"), progress=lambda _: None)
    clients = [json.loads(line) for line in (tmp_path / "run" / "clients.jsonl").read_text().splitlines()]
    for row in result.rows:
        assert row["sim/sampled"] == 4 and row["sim/kept"] == row["cohort"] == 2 and row["sim/cut"] == 2
        mine = {c["client"]: c for c in clients if c["round"] == row["round"]}
        kept = [c for c in mine.values() if c["status"] == "ok"]
        assert {c["device"] for c in kept} == {"fast"} and all(c["samples"] for c in kept)
        assert all(c["status"] == "cut" and c.get("samples") is None for c in mine.values() if c["device"] == "slow")
        assert row["sim/wasted_bytes_to_clients"] > 0  # the cut clients were still downloading when it closed


def test_resume_continues_the_simulated_clock(tiny, tmp_path):
    cfg = tiny(*BASE, SAME, "train.rounds=[1, 2]")
    whole = run_experiment(cfg, str(tmp_path / "whole"), progress=lambda _: None)

    def stop_after_two(record: dict) -> None:
        if record["round"] == 2:
            raise KeyboardInterrupt

    try:
        run_experiment(cfg, str(tmp_path / "cut"), progress=lambda _: None, on_record=stop_after_two)
    except KeyboardInterrupt:
        pass
    resumed = resume_experiment(str(tmp_path / "cut"), progress=lambda _: None)
    assert [r["sim/clock_s"] for r in resumed.rows] == [r["sim/clock_s"] for r in whole.rows]
