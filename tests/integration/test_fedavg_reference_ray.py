"""FedMML and LW on a real local Ray: the run directory is written, and FedAvg stays bit-identical to the engine
before the issue-10 redesign (tests/fixtures; the in-process engine is held to the same reference in tests/unit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedray.api import run_experiment
from fedray.config import load_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "fedavg_reference.json").read_text())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_ray_fedavg_equals_the_reference(ray_local, name, tmp_path):
    ref = REFERENCE[name]
    weights = np.load(FIXTURES / "fedavg_reference.npz")
    cfg = load_config(preset="tiny", overrides=ref["overrides"] + ["runtime.backend=ray"])
    result = run_experiment(cfg, str(tmp_path / name), progress=lambda _: None)
    stored = {k.split("/", 1)[1]: weights[k] for k in weights.files if k.startswith(f"{name}/")}
    assert result.state.keys() == stored.keys()
    assert [n for n in stored if not np.array_equal(result.state[n], stored[n])] == []
    assert [{k: r.get(k) for k in ref["rows"][0]} for r in result.rows] == ref["rows"]
    assert result.summary["resources"] == ref["summary_resources"]
    on_disk = json.loads((tmp_path / name / "summary.json").read_text())
    assert (on_disk["method"], on_disk["rounds"]) == (name, len(ref["rows"]))
    assert on_disk["resources"] == ref["summary_resources"]
    assert all(0.0 <= on_disk["metrics"][k] <= 1.0 for k in ("i2t_r10", "t2i_r10"))
