"""The ledger on a real local Ray: client FLOPs and memory cross the actor boundary intact."""

from __future__ import annotations

from fedray.api import run_experiment
from fedray.data import open_dataset
from fedray.resources import analytic
from fedray.schedules import build_schedule


def test_ray_run_records_flops_and_peak_memory(ray_local, tiny, tmp_path):
    cfg = tiny("train.method=lw")  # 2 client actors x 128 rows, batch 32: 4 steps a round
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    inputs = open_dataset(cfg.data.source).inputs
    expected = [2 * 4 * analytic.step_flops(cfg, stage, inputs, 16, 32) for stage in build_schedule(cfg)]
    assert [r["res/flops"] for r in result.rows] == expected
    assert result.summary["resources"]["flops"] == sum(expected)
    peaks = [r["res/peak_memory_bytes"] for r in result.rows]
    assert all(p > 0 for p in peaks) and result.summary["resources"]["peak_memory_bytes"] == max(peaks)
