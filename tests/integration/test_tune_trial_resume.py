"""A Tune trial interrupted mid-run continues from its fedray checkpoint: earlier rounds are not recomputed, and it
ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fedray.api import run_experiment
from fedray.cli import main
from fedray.config import load_config

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "tune_configs" / "smoke.yaml")
# One lw trial of 8 rounds with a few seconds each: the interrupt lands after round 3, well before the end.
SETS = ["search_space.train.method={grid: [lw]}", "scheduler=null", "train.rounds=[2, 6]", "train.local_epochs=3"]


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def test_interrupted_trial_resumes_from_its_checkpoint(ray_local, tmp_path):
    sweep = tmp_path / "sweep"
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "fedray.cli", "tune", SMOKE, "--out", str(sweep), "--address", address]
    cmd += [a for s in SETS for a in ("--set", s)]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # a safety bound only: the row decides
        # Row 3 is written after round 2's checkpoint: wait for it (an event), then interrupt.
        while not any(len(_rows(r)) >= 3 for r in sweep.glob("trials/*/run")):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=600) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (trial,) = sweep.glob("trials/*")
    run = trial / "run"
    before = _rows(run)
    assert 3 <= len(before) < 8 and not (run / "summary.json").exists(), "the trial should stop mid-run"

    assert main(["tune", SMOKE, "--resume", "--out", str(sweep)]) == 0

    assert sorted(p.name for p in trial.glob("run*")) == ["run"]  # continued in place, not restarted
    after = _rows(run)
    assert [r["round"] for r in after] == list(range(1, 9))
    kept = [r for r in after if r["round"] <= 2]
    assert kept == before[:2], "rounds before the checkpoint were recomputed"
    info = json.loads((trial / "trial.json").read_text())
    assert info["resumed_from_round"] >= 2
    reference = run_experiment(load_config(str(run / "config.yaml"), overrides=[
        "runtime.backend=local", "runtime.torch_threads=1"]), str(tmp_path / "reference"), progress=lambda _: None)
    from safetensors.numpy import load_file

    resumed = load_file(str(run / "model.safetensors"))
    assert resumed.keys() == reference.state.keys()
    assert [n for n in resumed if not np.array_equal(resumed[n], reference.state[n])] == []


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
