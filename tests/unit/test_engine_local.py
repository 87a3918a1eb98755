"""The in-process fleet end to end: run directory contents, exact communication, outputs never overwritten."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedray.api import run_experiment
from fedray.data import open_dataset
from fedray.model import build_model
from fedray.rundir import OutputError
from fedray.schedules import build_schedule
from fedray.server import cohort_size


def expected_comm_bytes(cfg) -> int:
    """Σ over rounds of cohort x (down + up) exchanged bytes, plus one-off prefix syncs, from first principles."""
    info = open_dataset(cfg.data.source)
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed)
    size = {g: 0 for g in model.groups()}
    for name, t in model.state_dict().items():
        size.setdefault(model.group_of(name), 0)
        size[model.group_of(name)] += t.numel() * t.element_size()
    k = cohort_size(cfg.data.num_clients, cfg.train.participation)
    total, trained = 0, set()
    for spec in build_schedule(cfg):
        if spec.rounds == 0:
            continue
        per_client = sum(size[g] for g in spec.exchanged)
        total += spec.rounds * k * 2 * per_client
        # full participation: every client needs frozen groups trained in earlier stages once
        total += k * sum(size[g] for g in spec.frozen & trained)
        trained |= spec.trainable
    return total


@pytest.mark.parametrize("method", ["fedmml", "lw", "prog"])
def test_run_writes_directory_and_counts_exact_bytes(tiny, tmp_path, method):
    cfg = tiny(f"train.method={method}", "runtime.backend=local", "train.rounds=[2, 1]")
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "clients.jsonl", "config.yaml", "metrics.jsonl",
                                                      "model.safetensors", "partition.json", "summary.json",
                                                      "towers"]
    assert sorted(p.name for p in (run / "towers").iterdir()) == ["image", "text"]  # one loadable model per tower
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == method and summary["rounds"] == 3
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"):
        assert 0.0 <= summary["metrics"][key] <= 1.0
    assert summary["resources"]["comm_bytes"] == expected_comm_bytes(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert sum(r["comm/bytes_to_clients"] + r["comm/bytes_from_clients"] for r in rows) == summary["resources"]["comm_bytes"]
    assert all(np.isfinite(r["train/loss"]) for r in rows)
    assert set(result.state) == set(build_model(cfg.model, {m: open_dataset("emoji").inputs for m in cfg.model.towers},
                                                0).state_dict())


def test_lw_sends_less_than_fedmml(tiny, tmp_path):
    comm = {m: run_experiment(tiny(f"train.method={m}", "runtime.backend=local"), str(tmp_path / m),
                              progress=lambda _: None).summary["resources"]["comm_bytes"] for m in ("fedmml", "lw")}
    assert comm["lw"] < comm["fedmml"]


def test_partial_participation_samples_a_cohort(tiny, tmp_path):
    cfg = tiny("runtime.backend=local", "data.num_clients=4", "train.batch_size=16", "train.participation=0.5")
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    assert all(r["cohort"] == 2 for r in result.rows)


def test_existing_output_is_never_overwritten(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{\"earlier\": true}")
    with pytest.raises(OutputError, match="exists and is not empty"):
        run_experiment(tiny("runtime.backend=local"), str(out), progress=lambda _: None)
    assert json.loads((out / "summary.json").read_text()) == {"earlier": True}


def test_default_run_directories_are_fresh(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = run_experiment(tiny("runtime.backend=local"), progress=lambda _: None).run_dir
    b = run_experiment(tiny("runtime.backend=local"), progress=lambda _: None).run_dir
    assert a != b and a.startswith("runs/tiny-") and b.startswith("runs/tiny-")
