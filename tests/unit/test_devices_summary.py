"""Run-level fleet figures from metrics rows: time to target, eligible fraction, compare columns, the plot."""

from __future__ import annotations

import pytest

from fedray.devices import compare_columns, fleet_summary, reached, time_to_target
from fedray.devices.plot import time_to_accuracy_plot


def rows(values: list[float], round_s: float, eligible: int, metric: str = "eval/i2t_r10") -> list[dict]:
    out, clock = [], 0.0
    for i, v in enumerate(values):
        clock += round_s
        out.append({"round": i + 1, metric: v, "eval/loss": 3.0 - v, "sim/round_s": round_s, "sim/clock_s": clock,
                    "sim/eligible": eligible, "sim/online": eligible, "sim/sampled": eligible, "sim/kept": eligible,
                    "sim/cut": 0, "sim/dropped": 0, "sim/wasted_bytes_to_clients": 10,
                    "sim/wasted_bytes_from_clients": 5, "sim/wasted_flops": 7})
    return out


def test_loss_targets_are_reached_from_above_others_from_below():
    assert reached("eval/loss", 2.0, 2.5) and not reached("eval/loss", 3.0, 2.5)
    assert reached("eval/i2t_r10", 0.2, 0.15) and not reached("eval/i2t_r10", 0.1, 0.15)
    assert not reached("eval/i2t_r10", float("nan"), 0.15)


def test_time_to_target_is_the_first_evaluated_round_that_reached_it():
    run = rows([0.05, 0.12, 0.16, 0.14, 0.2], round_s=600.0, eligible=6)
    del run[1]["eval/i2t_r10"]  # a round without evaluation cannot reach a target
    hits = time_to_target(run, {"eval/i2t_r10": 0.15, "eval/loss": 2.85, "eval/t2i_r1": 0.5})
    assert hits["eval/i2t_r10"] == {"round": 3, "value": 0.16, "sim_s": 1800.0}
    assert hits["eval/loss"]["round"] == 3  # losses 2.95, 2.88, 2.84: the first at or below 2.85
    assert hits["eval/t2i_r1"] is None


def test_without_a_fleet_time_to_target_still_gives_the_round():
    run = [{"round": 1, "eval/i2t_r10": 0.1}, {"round": 2, "eval/i2t_r10": 0.3}]
    assert time_to_target(run, {"eval/i2t_r10": 0.2}) == {"eval/i2t_r10": {"round": 2, "value": 0.3, "sim_s": None}}
    assert fleet_summary(run, 8) == {}
    assert compare_columns({}, time_to_target(run, {"eval/i2t_r10": 0.2})) == {"rounds_to_eval_i2t_r10": 2}


def test_fleet_summary_and_compare_columns():
    run = rows([0.1, 0.2], round_s=1800.0, eligible=6)
    summary = fleet_summary(run, num_clients=8)
    assert summary["sim_total_s"] == 3600.0
    assert summary["eligible_fraction"] == 6 / 8
    assert summary["kept_total"] == 12 and summary["wasted_bytes"] == 30 and summary["wasted_flops"] == 14
    cols = compare_columns(summary, time_to_target(run, {"eval/i2t_r10": 0.15}))
    assert cols == {"sim_hours": 1.0, "eligible_frac": 0.75, "rounds_to_eval_i2t_r10": 2, "hours_to_eval_i2t_r10": 1.0}


def test_time_to_accuracy_plot_writes_a_png(tmp_path):
    runs = {"fedmml": rows([0.05, 0.1, 0.2], 900.0, 2), "lw": rows([0.04, 0.12, 0.18, 0.22], 400.0, 6)}
    path = time_to_accuracy_plot(runs, "eval/i2t_r10", tmp_path / "plots" / "tta.png", target=0.15)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_the_plot_refuses_runs_without_a_clock(tmp_path):
    with pytest.raises(ValueError, match="need a fleet to have a clock"):
        time_to_accuracy_plot({"lw": [{"round": 1, "eval/i2t_r10": 0.1}]}, "eval/i2t_r10", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
