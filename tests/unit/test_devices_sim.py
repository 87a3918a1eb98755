"""One run's device simulation as the round engine will drive it: prepare once, then cohort + time per round."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from fedray.data import open_dataset
from fedray.devices import FleetError, round_record
from fedray.devices.sim import prepare
from fedray.schedules import build_schedule

FLEET = ("fleet.classes={small: {share: 0.5, memory_mib: 0.5, gflops: 1, downlink_mbps: 1, uplink_mbps: 1},"
         " big: {share: 0.5, memory_mib: 1024, gflops: 10, downlink_mbps: 20, uplink_mbps: 5, availability: 0.7}}")


def make(tiny, *overrides):
    cfg = tiny("data.num_clients=8", *overrides)
    return cfg, prepare(cfg, build_schedule(cfg), open_dataset(cfg.data.source).inputs, [32] * 8)


MIXED = ("fleet.classes={small: {share: 0.25, memory_mib: 0.5, gflops: 1, downlink_mbps: 1, uplink_mbps: 1},"
         " fast: {share: 0.5, memory_mib: 1024, gflops: 10, downlink_mbps: 20, uplink_mbps: 5, availability: 0.7},"
         " slow: {share: 0.25, memory_mib: 1024, gflops: 10, downlink_mbps: 1, uplink_mbps: 1}}")  # slow: 16 s


def simulate(sim, rounds, rng, clock=0.0, start=0, k=4):
    """A stand-in for the engine: per round, cohort -> bytes -> timing -> clock (payload 1 MB each way)."""
    out = []
    for r in range(start, start + rounds):
        cohort = sim.cohort(0, r, k, rng)
        n = len(cohort.sampled)
        timing = sim.time(0, cohort, np.full(n, 1e6), np.full(n, 1e6))
        clock += timing.round_s
        out.append(round_record(cohort, timing, clock) | {"sampled": cohort.sampled, "kept": timing.kept})
    return out, clock


def test_no_fleet_prepares_nothing(tiny):
    assert make(tiny)[1] is None


def test_prepare_checks_eligibility_and_reports_it(tiny):
    cfg, sim = make(tiny, FLEET, "fleet.over_selection=0.5")
    small = [c for c, d in enumerate(sim.devices.device) if d == "small"]
    assert not sim.eligible[0][small].any() and sim.eligible[0].sum() == 4
    report = json.loads(json.dumps(sim.report()))
    assert report["counts"] == {"big": 4, "small": 4}
    assert [s["eligible"] for s in report["stages"]] == [4, 4] and report["stages"][0]["by_device"]["small"] == 0
    assert sim.steps.tolist() == [1] * 8  # 32 rows, batch 32, 1 epoch
    rows, _ = simulate(sim, 30, np.random.default_rng(cfg.train.seed))
    assert not set().union(*(r["sampled"] for r in rows)) & set(small)  # never asked to train what it cannot hold
    assert all(r["sim/eligible"] == 4 and r["sim/sampled"] == r["sim/online"] <= 4 for r in rows)


def test_the_clock_continues_bit_identically_from_a_checkpoint(tiny):
    cfg, sim = make(tiny, MIXED, "fleet.over_selection=0.5", "fleet.deadline_s=5")
    straight, clock = simulate(sim, 12, np.random.default_rng(cfg.train.seed), k=2)
    rng = np.random.default_rng(cfg.train.seed)
    first, mid = simulate(sim, 5, rng, k=2)
    saved = (copy.deepcopy(rng.bit_generator.state), mid)  # what a checkpoint keeps: sampler state, clock
    resumed_rng = np.random.default_rng(0)
    resumed_rng.bit_generator.state = saved[0]
    rest, end = simulate(sim, 7, resumed_rng, clock=saved[1], start=5, k=2)
    assert first + rest == straight and end == clock
    assert any(r["sim/dropped"] for r in straight) and any(r["sim/cut"] for r in straight)  # both rules acted


def test_a_fleet_nobody_can_train_on_fails_before_compute(tiny):
    with pytest.raises(FleetError, match="no device can train stage 1 of lw"):
        make(tiny, "fleet.classes={tiny: {share: 1.0, memory_mib: 0.1, gflops: 1, downlink_mbps: 1, uplink_mbps: 1}}")
