"""Eligibility per stage: the ledger's per-stage peak (as `fedray resources` computes it) against device budgets."""

from __future__ import annotations

import numpy as np
import pytest

from fedray.api import run_experiment
from fedray.config import ConfigError, load_config
from fedray.config.schema import DeviceClassConfig
from fedray.data import open_dataset
from fedray.devices import FleetError, build_devices, check_fleet, eligibility_report
from fedray.devices.costs import local_steps, stage_costs
from fedray.devices.profiles import MIB, from_profiles
from fedray.plan import workload_of
from fedray.resources.estimate import estimate
from fedray.schedules import build_schedule


def pop(*budgets_mib: float, names: tuple[str, ...] | None = None):
    names = names or tuple(f"d{m:g}" for m in budgets_mib)
    return from_profiles(list(names), [DeviceClassConfig(memory_mib=m, gflops=1, downlink_mbps=1, uplink_mbps=1)
                                       for m in budgets_mib], "test")


PEAKS = {0: int(14.47 * MIB), 1: int(13.07 * MIB)}  # the default preset's LW stages


def test_no_device_can_train_the_first_stage_is_a_named_error():
    with pytest.raises(FleetError) as err:
        check_fleet(pop(8, 12, 4, names=("micro", "small", "nano")), PEAKS, "skip", "lw", 16)
    msg = str(err.value)
    assert isinstance(err.value, ConfigError)  # the CLI exits with code 2
    assert "no device can train stage 1 of lw: it needs 14.47 MiB of training memory at train.batch_size=16" in msg
    assert "the largest budget is 12.00 MiB (small)" in msg


def test_a_later_stage_nobody_can_hold_is_an_error_too():
    with pytest.raises(FleetError, match="no device can train stage 2 of prog: it needs 25.01 MiB"):
        check_fleet(pop(16, 20), {0: int(14.47 * MIB), 1: int(25.01 * MIB)}, "skip", "prog", 16)


def test_skip_leaves_out_clients_below_a_stage_peak():
    masks = check_fleet(pop(8, 14, 20, 64), PEAKS, "skip", "lw", 16)
    assert masks[0].tolist() == [False, False, True, True]
    assert masks[1].tolist() == [False, True, True, True]  # stage 2 needs less: client 1 can hold it
    report = eligibility_report(pop(8, 14, 20, 64), PEAKS, masks)
    assert [r["eligible"] for r in report] == [2, 3] and report[0]["peak_memory_mib"] == pytest.approx(14.47, abs=0.01)
    assert report[1]["by_device"] == {"d8": 0, "d14": 1, "d20": 1, "d64": 1}


def test_strict_fails_naming_the_clients_that_cannot_train():
    with pytest.raises(FleetError) as err:
        check_fleet(pop(8, 20, 64, names=("micro", "small", "large")), PEAKS, "strict", "lw", 16)
    assert ("fleet.policy=strict: 1 client(s) cannot train stage 1 of lw, which needs 14.47 MiB at "
            "train.batch_size=16: 0 (micro, 8.00 MiB)") in str(err.value)
    assert set(check_fleet(pop(20, 64), PEAKS, "strict", "lw", 16)) == {0, 1}


@pytest.mark.parametrize("method", ["lw", "fedmml"])
def test_stage_costs_are_the_figures_fedray_resources_prints(tiny, method):
    cfg = tiny(f"train.method={method}", "train.batch_size=16")
    inputs = open_dataset(cfg.data.source).inputs
    costs = stage_costs(cfg, build_schedule(cfg), inputs)
    report = estimate(cfg, workload_of(cfg, None), methods=(method,))
    rows = [r for r in report["stages"] if r["rounds"]]
    assert sorted(costs) == [r["stage"] - 1 for r in rows]
    for row in rows:
        assert costs[row["stage"] - 1].memory_bytes == row["memory"]["total"]
        assert costs[row["stage"] - 1].flops == row["step_flops"]


def test_constrained_fleet_admits_more_clients_under_lw_than_fedmml_on_the_default_preset():
    base = load_config(preset="default", overrides=["fleet.preset=constrained"])
    inputs = open_dataset(base.data.source).inputs
    devices = build_devices(base.fleet, base.data.num_clients, base.train.seed)
    admitted = {}
    for method in ("lw", "fedmml", "prog"):
        cfg = load_config(preset="default", overrides=["fleet.preset=constrained", f"train.method={method}"])
        peaks = {s: c.memory_bytes for s, c in stage_costs(cfg, build_schedule(cfg), inputs).items()}
        admitted[method] = [int(m.sum()) for m in check_fleet(devices, peaks, "skip", method, 16).values()]
    assert admitted == {"lw": [6, 6], "fedmml": [2], "prog": [6, 2]}  # 8 clients: 2 micro, 4 small, 2 large


def test_flops_known_before_training_equal_what_the_ledger_charges(tiny, tmp_path):
    cfg = tiny("runtime.backend=local")  # lw, 2 clients x 128 rows, batch 32, 1 epoch
    inputs = open_dataset(cfg.data.source).inputs
    costs = stage_costs(cfg, build_schedule(cfg), inputs)
    rows = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None).rows
    shards = np.array([128, 128])
    for row, stage in zip(rows, (0, 1)):
        planned = costs[stage].flops * local_steps(shards, cfg.train.local_epochs, cfg.train.batch_size)
        assert int(planned.sum()) == row["res/flops"]
        assert costs[stage].memory_bytes == row["res/peak_memory_bytes"]
