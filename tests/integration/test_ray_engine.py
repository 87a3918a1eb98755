"""Prog end to end on a real local Ray, asking for a GPU the machine does not have: actors named by role, the
ledger's FLOPs and memory intact across the actor boundary.

FedMML and LW run on Ray in test_fedavg_reference_ray.py, bit-identical to the pinned reference (which the
in-process engine also equals: tests/unit/test_fedavg_reference.py); one Ray run per method keeps the suite short.
"""

from __future__ import annotations

import json

from fedray.api import run_experiment
from fedray.data import open_dataset
from fedray.resources import analytic
from fedray.schedules import build_schedule


def test_prog_on_local_ray_falls_back_to_cpu_names_its_actors_and_records_flops_and_memory(ray_local, tiny, tmp_path):
    names: set[str] = set()

    def look(_record):
        names.update(a["name"] for a in ray_local.util.list_named_actors(all_namespaces=True))

    cfg = tiny("train.method=prog", "runtime.client_gpus=0.25")  # 2 client actors x 128 rows, batch 32: 4 steps
    result = run_experiment(cfg, str(tmp_path / "prog"), progress=lambda _: None, on_record=look)

    summary = json.loads((tmp_path / "prog" / "summary.json").read_text())
    assert summary["method"] == "prog" and summary["rounds"] == 2  # would hang forever if the GPU request reached Ray
    assert summary["resources"]["comm_bytes"] > 0
    assert all(0.0 <= summary["metrics"][k] <= 1.0 for k in ("i2t_r10", "t2i_r10"))
    assert len(result.rows) == 2
    assert {"fedray-server", "fedray-client-000", "fedray-client-001"} <= names
    # The ledger: client FLOPs and modelled memory cross the actor boundary intact.
    inputs = open_dataset(cfg.data.source).inputs
    expected = [2 * 4 * analytic.step_flops(cfg, stage, inputs, 16, 32) for stage in build_schedule(cfg)]
    assert [r["res/flops"] for r in result.rows] == expected and summary["resources"]["flops"] == sum(expected)
    peaks = [r["res/peak_memory_bytes"] for r in result.rows]
    assert all(p > 0 for p in peaks) and summary["resources"]["peak_memory_bytes"] == max(peaks)
