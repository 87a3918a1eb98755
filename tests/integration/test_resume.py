"""Kill the driver process mid-run, resume from its checkpoint, and get bit-identical weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fedray.api import resume_experiment, run_experiment
from fedray.cli import main
from fedray.config import ConfigError

# 6 rounds (lw, 2 stages), cohorts of 2 of 4 clients (so the sampler state matters), a checkpoint after
# every round, one torch thread: the same arithmetic in every process.
OVERRIDES = ["runtime.backend=local", "train.rounds=[3,3]", "runtime.torch_threads=1", "runtime.checkpoint_every=1",
             "data.train_limit=128", "train.local_epochs=2", "data.num_clients=4", "train.participation=0.5"]


def _checkpoint_round(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]["rounds_done"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_resume_after_driver_kill_is_bit_identical(ray_local, tiny, tmp_path):
    cfg = tiny(*OVERRIDES)
    reference = run_experiment(cfg, str(tmp_path / "reference"), progress=lambda _: None)

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--out", str(run_dir)]
    cmd += [a for o in OVERRIDES for a in ("--set", o)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.monotonic() + 1800  # a safety bound: the checkpoint decides
    while _checkpoint_round(run_dir) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(300) == -signal.SIGKILL
    at = _checkpoint_round(run_dir)
    assert 2 <= at < 6, f"the driver should die mid-run, after its 2nd checkpoint (checkpoint at round {at})"
    assert not (run_dir / "summary.json").exists() and not (run_dir / "model.safetensors").exists()

    shutil.copytree(run_dir, tmp_path / "killed-on-ray")
    assert main(["run", "--resume", str(run_dir)]) == 0  # the run's own config, from the checkpoint
    # The same checkpoint resumed on Ray (runtime.* may change on resume): the server actor imports the state.
    on_ray = resume_experiment(str(tmp_path / "killed-on-ray"), tiny(*OVERRIDES, "runtime.backend=ray",
                                                                     "runtime.client_cpus=0.25"),
                               progress=lambda _: None)

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5, 6]  # rounds re-done after the checkpoint: listed once
    ref_model = load_file(tmp_path / "reference" / "model.safetensors")
    res_model = load_file(run_dir / "model.safetensors")
    assert ref_model.keys() == res_model.keys()
    ray_model = load_file(tmp_path / "killed-on-ray" / "model.safetensors")
    for name, tensor in ref_model.items():
        assert torch.equal(tensor, res_model[name]), name
        assert torch.equal(tensor, ray_model[name]), name
    assert on_ray.summary["metrics"] == reference.summary["metrics"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"] == reference.summary["metrics"]
    assert summary["resources"] == reference.summary["resources"]  # comm bytes continue from the checkpoint


def test_resume_refuses_a_different_config(tiny, tmp_path):
    run_experiment(tiny(*OVERRIDES[:1], "train.rounds=[1,0]"), str(tmp_path / "r"), progress=lambda _: None)
    (tmp_path / "r" / "summary.json").unlink()  # pretend it was interrupted after its checkpoint

    with pytest.raises(ConfigError) as err:
        resume_experiment(str(tmp_path / "r"), tiny(*OVERRIDES[:1], "train.rounds=[1,0]", "train.seed=7",
                                                    "train.batch_size=16", "runtime.num_cpus=1"))
    msg = str(err.value)
    assert "different config" in msg and "train.seed (checkpoint 42, now 7)" in msg and "train.batch_size" in msg
    assert "runtime.num_cpus" not in msg  # where it runs may change
