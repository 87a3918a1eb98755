"""The simulated clock: hand-computed round times, over-selection, deadlines, availability, cohort sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedray.config.schema import DeviceClassConfig
from fedray.devices import client_fields, eligible, online, round_record, select_cohort, time_round
from fedray.devices.profiles import from_profiles


def devices(*profiles: dict):
    return from_profiles([p.pop("name", f"d{i}") for i, p in enumerate(profiles)],
                         [DeviceClassConfig(**p) for p in profiles], "test")


# Three clients (config units -> SI): downlink 8/16/4 Mbit/s = 1/2/0.5 MB/s, uplink 4/8/2 Mbit/s = 0.5/1/0.25 MB/s.
THREE = dict(
    a=dict(memory_mib=16, gflops=1, downlink_mbps=8, uplink_mbps=4, latency_s=0.5),
    b=dict(memory_mib=16, gflops=2, downlink_mbps=16, uplink_mbps=8),
    c=dict(memory_mib=16, gflops=4, downlink_mbps=4, uplink_mbps=2, latency_s=0.1),
)
DOWN, FLOPS, UP = np.array([2e6, 2e6, 1e6]), np.array([3e9, 4e9, 8e9]), np.array([1e6, 1e6, 1e6])


def three():
    return devices(*[{"name": n, **p} for n, p in THREE.items()])


def test_round_time_equals_a_hand_computed_three_client_case():
    # a: 0.5 + 2e6/1e6 + 3e9/1e9 + 1e6/0.5e6 = 0.5 + 2 + 3 + 2 = 7.5 s
    # b: 0   + 2e6/2e6 + 4e9/2e9 + 1e6/1e6   = 1 + 2 + 1       = 4.0 s
    # c: 0.1 + 1e6/0.5e6 + 8e9/4e9 + 1e6/0.25e6 = 0.1 + 2 + 2 + 4 = 8.1 s
    timing = time_round(three(), (0, 1, 2), DOWN, FLOPS, UP, k=3, deadline_s=None)
    assert timing.finish_s.tolist() == pytest.approx([7.5, 4.0, 8.1])
    assert timing.parts_s[0].tolist() == pytest.approx([0.5, 2.0, 3.0, 2.0])
    assert timing.round_s == pytest.approx(8.1)  # the slowest kept client
    assert timing.status == ("kept", "kept", "kept")
    assert (timing.wasted_bytes_to_clients, timing.wasted_bytes_from_clients, timing.wasted_flops) == (0, 0, 0)


def test_over_selection_keeps_the_first_k_and_charges_the_cut_client_until_the_round_closed():
    timing = time_round(three(), (0, 1, 2), DOWN, FLOPS, UP, k=2, deadline_s=None)
    assert timing.kept == (0, 1) and timing.with_status("cut") == (2,)
    assert timing.round_s == pytest.approx(7.5)  # the 2nd report closes the round
    # c at 7.5 s: downloaded (0.1-2.1 s) and computed (2.1-4.1 s) everything, uploaded (4.1-8.1 s) 3.4 of 4 s
    assert timing.wasted_bytes_to_clients == 1_000_000 and timing.wasted_flops == 8_000_000_000
    assert timing.wasted_bytes_from_clients == 850_000


def test_a_deadline_drops_late_clients_and_closes_the_round():
    timing = time_round(three(), (0, 1, 2), DOWN, FLOPS, UP, k=3, deadline_s=6.0)
    assert timing.kept == (1,) and timing.with_status("dropped") == (0, 2)
    assert timing.round_s == 6.0
    # at 6 s: a uploaded 0.5 of 2 s (250 kB), c 1.9 of 4 s (475 kB); both had downloaded and computed everything
    assert timing.wasted_bytes_to_clients == 3_000_000 and timing.wasted_flops == 11_000_000_000
    assert timing.wasted_bytes_from_clients == 725_000
    record = round_record(select_cohort(np.ones(3, bool), np.ones(3, bool), 3, 0.0, np.random.default_rng(0)),
                          timing, clock_s=16.0)
    assert record["sim/round_s"] == 6.0 and record["sim/clock_s"] == 16.0
    assert (record["sim/sampled"], record["sim/kept"], record["sim/dropped"], record["sim/cut"]) == (3, 1, 2, 0)
    assert client_fields(three(), timing)[2] == {"device": "c", "sim_s": pytest.approx(8.1), "sim_status": "dropped"}


def test_a_deadline_that_everyone_meets_changes_nothing():
    assert time_round(three(), (0, 1, 2), DOWN, FLOPS, UP, k=3, deadline_s=9.0).round_s == pytest.approx(8.1)


def test_an_empty_round_takes_the_deadline_or_nothing():
    none = np.zeros(0)
    assert time_round(three(), (), none, none, none, k=2, deadline_s=30.0).round_s == 30.0
    assert time_round(three(), (), none, none, none, k=2, deadline_s=None).round_s == 0.0


def test_over_selection_keeps_the_fastest_k_of_a_random_population():
    rng = np.random.default_rng(3)
    n, k = 50, 10
    pop = devices(*[dict(memory_mib=16, gflops=float(g), downlink_mbps=float(d), uplink_mbps=float(u),
                         latency_s=float(lat))
                    for g, d, u, lat in zip(rng.uniform(1, 30, n), rng.uniform(1, 100, n), rng.uniform(0.5, 20, n),
                                            rng.uniform(0, 0.2, n))])
    cohort = select_cohort(np.ones(n, bool), np.ones(n, bool), k, 0.3, np.random.default_rng(0))
    assert len(cohort.sampled) == math.ceil(k * 1.3) == 13
    sampled = cohort.sampled
    timing = time_round(pop, sampled, np.full(13, 5e6), np.full(13, 2e10), np.full(13, 5e6), k, None)
    fastest = [sampled[i] for i in np.argsort(timing.finish_s, kind="stable")[:k]]
    assert sorted(timing.kept) == sorted(fastest)
    assert timing.round_s == pytest.approx(np.sort(timing.finish_s)[k - 1])
    assert len(timing.with_status("cut")) == 3


def test_availability_is_seeded_reproducible_and_matches_the_probability():
    pop = devices(*[dict(memory_mib=16, gflops=1, downlink_mbps=1, uplink_mbps=1, availability=a)
                    for a in (0.0, 0.25, 0.5, 1.0)])
    draws = np.array([online(pop, 42, r) for r in range(2000)])
    again = np.array([online(pop, 42, r) for r in range(2000)])
    assert np.array_equal(draws, again)  # a pure function of (seed, round): the same after --resume
    assert not np.array_equal(draws, np.array([online(pop, 7, r) for r in range(2000)]))
    assert not draws[:, 0].any() and draws[:, 3].all()
    assert draws[:, 1].mean() == pytest.approx(0.25, abs=0.03) and draws[:, 2].mean() == pytest.approx(0.5, abs=0.03)


def test_offline_clients_are_never_sampled():
    pop = devices(*[dict(memory_mib=16, gflops=1, downlink_mbps=1, uplink_mbps=1, availability=0.5)] * 10)
    rng = np.random.default_rng(0)
    for r in range(50):
        up = online(pop, 42, r)
        cohort = select_cohort(np.ones(10, bool), up, 5, 0.0, rng)
        assert set(cohort.sampled) <= set(np.flatnonzero(up).tolist())
        assert cohort.online == up.sum() and len(cohort.sampled) == min(5, int(up.sum()))


def test_a_client_below_a_stage_peak_is_never_sampled_for_it():
    budgets = [8, 16, 32, 14.4, 64]  # MiB; the stage needs 14.47 MiB
    pop = devices(*[dict(memory_mib=m, gflops=1, downlink_mbps=1, uplink_mbps=1) for m in budgets])
    can = eligible(pop, int(14.47 * 2**20))
    assert can.tolist() == [False, True, True, False, True]
    rng = np.random.default_rng(0)
    seen = set()
    for r in range(200):
        seen |= set(select_cohort(can, online(pop, 42, r), 5, 0.3, rng).sampled)
    assert seen == {1, 2, 4}


def test_a_fleet_of_identical_always_on_devices_samples_exactly_as_no_fleet():
    n, k = 40, 10  # participation 0.25 of 40 clients
    today, fleet = np.random.default_rng(42), np.random.default_rng(42)
    for _ in range(20):
        expected = tuple(sorted(int(c) for c in today.choice(n, k, replace=False)))  # the orchestrator's draw
        assert select_cohort(np.ones(n, bool), np.ones(n, bool), k, 0.0, fleet).sampled == expected
