"""FedAvg stays bit-identical to the engine before the issue-10 redesign (weights and rows in tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fedray.api import run_experiment
from fedray.config import load_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "fedavg_reference.json").read_text())


def check_against_reference(name: str, backend: str, tmp_path: Path) -> None:
    """Run reference case ``name`` on ``backend``; weights and per-round rows must equal the stored ones."""
    ref = REFERENCE[name]
    weights = np.load(FIXTURES / "fedavg_reference.npz")
    threads = torch.get_num_threads()
    try:
        cfg = load_config(preset="tiny", overrides=ref["overrides"] + [f"runtime.backend={backend}"])
        result = run_experiment(cfg, str(tmp_path / f"{name}-{backend}"), progress=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    stored = {k.split("/", 1)[1]: weights[k] for k in weights.files if k.startswith(f"{name}/")}
    assert result.state.keys() == stored.keys()
    assert [n for n in stored if not np.array_equal(result.state[n], stored[n])] == []
    assert [{k: r.get(k) for k in ref["rows"][0]} for r in result.rows] == ref["rows"]
    assert result.summary["resources"] == ref["summary_resources"]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_in_process_fedavg_equals_the_reference(name, tmp_path):
    check_against_reference(name, "local", tmp_path)
