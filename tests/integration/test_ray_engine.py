"""All three methods end to end on a real local Ray, and parity with the in-process fleet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedray.api import run_experiment


@pytest.mark.parametrize("method", ["fedmml", "lw", "prog"])
def test_methods_run_on_local_ray(ray_local, tiny, tmp_path, method):
    result = run_experiment(tiny(f"train.method={method}"), str(tmp_path / method), progress=lambda _: None)
    summary = json.loads((tmp_path / method / "summary.json").read_text())
    assert summary["method"] == method and summary["rounds"] == 2
    assert summary["resources"]["comm_bytes"] > 0
    assert all(0.0 <= summary["metrics"][k] <= 1.0 for k in ("i2t_r10", "t2i_r10"))
    assert len(result.rows) == 2


def test_ray_and_in_process_fleets_give_bit_identical_weights(ray_local, tiny, tmp_path):
    over = ("train.method=lw", "train.rounds=[2, 1]", "data.num_clients=3", "train.batch_size=16",
            "train.participation=0.67", "runtime.torch_threads=1")
    on_ray = run_experiment(tiny(*over), str(tmp_path / "ray"), progress=lambda _: None)
    local = run_experiment(tiny(*over, "runtime.backend=local"), str(tmp_path / "local"), progress=lambda _: None)
    assert on_ray.state.keys() == local.state.keys()
    assert all(np.array_equal(on_ray.state[k], local.state[k]) for k in local.state)
    assert [r["comm/total_bytes"] for r in on_ray.rows] == [r["comm/total_bytes"] for r in local.rows]


def test_actors_are_named_by_role(ray_local, tiny, tmp_path):
    names: set[str] = set()

    def look(_record):
        names.update(a["name"] for a in ray_local.util.list_named_actors(all_namespaces=True))

    run_experiment(tiny(), str(tmp_path / "run"), progress=lambda _: None, on_record=look)
    assert {"fedray-server", "fedray-client-000", "fedray-client-001"} <= names


def test_gpu_request_without_gpus_falls_back_to_cpu(ray_local, tiny, tmp_path, caplog):
    result = run_experiment(tiny("runtime.client_gpus=0.25"), str(tmp_path / "run"), progress=lambda _: None)
    assert result.summary["rounds"] == 2  # would hang forever if the GPU request reached Ray
