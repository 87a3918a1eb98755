"""Real Ray Tune sweeps on 2 CPUs: concurrency in placement groups, the β sweep interrupted and resumed (finished
trials untouched, the cut trial from its checkpoint)."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from fedray.api import run_experiment
from fedray.cli import main
from fedray.config import load_config
from fedray.tune.metrics import reported_metrics
from fedray.tune.spec import load_sweep

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "tune_configs" / "smoke.yaml")
BETA = str(REPO / "tune_configs" / "beta_sweep.yaml")
# Two lw trials of 8 rounds (a few seconds each), one at a time: an interrupt after a trial's round 3 lands mid-run.
BETA_SETS = ["base.preset=tiny", "search_space.data.partition.beta={grid: [0.05, 5]}",
             "search_space.train.method={grid: [lw]}", "max_concurrent_trials=1", "train.rounds=[2, 6]",
             "train.local_epochs=3"]


def _rows(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "trials.csv").open()))


def _last_results(sweep: Path) -> list[dict]:
    """The last result each trial reported to Tune, as Tune stored it."""
    files = sorted((sweep / "tune").glob("*/result.json"))
    return [json.loads(f.read_text().splitlines()[-1]) for f in files]


def _check_pngs(sweep: Path, expected: set[str]) -> None:
    pngs = {p.name for p in (sweep / "plots").glob("*.png")}
    assert expected <= pngs
    for name in pngs:
        with Image.open(sweep / "plots" / name) as img:
            img.verify()
            assert img.format == "PNG"


def test_smoke_sweep_runs_two_trials_at_once(ray_local, tmp_path, capsys, caplog):
    sweep = tmp_path / "smoke"
    caplog.set_level(logging.WARNING, logger="fedray")

    assert main(["tune", SMOKE, "--out", str(sweep), "--set", "max_concurrent_trials=8"]) == 0

    # A trial reserves 0.25 (trainable) + 0.25 (server) + 2 x 0.25 CPUs: 2 fit on 2 CPUs, so 8 is lowered.
    assert "max_concurrent_trials=8 but the cluster holds only 2 trial(s)" in caplog.text
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    # A handful of lines (it was 436): each trial's rounds against its total, each finished trial, where it went.
    assert sum(" round 2/2 | eval/i2t_r1 " in line for line in lines) == 2, lines
    assert sum(line.startswith("[smoke] ") and " trial " in line and " finished | " in line for line in lines) == 2
    assert len(lines) <= 10 and "Configuration for experiment" not in printed.out, lines

    rows = _rows(sweep)
    assert sorted(r["train.method"] for r in rows) == ["lw", "prog"]
    assert all(r["status"] == "complete" and r["rounds"] == "2" for r in rows)  # ASHA's stop at max_t is no failure
    assert not list(sweep.glob("trials/*/run*/FAILED"))
    assert all(0.0 <= float(r["eval/i2t_r1"]) <= 1.0 and float(r["comm_mb"]) > 0 for r in rows)
    a, b = ((float(r["started_at"]), float(r["finished_at"])) for r in rows)
    assert a[0] < b[1] and b[0] < a[1], f"trials did not overlap: {a} {b}"
    _check_pngs(sweep, {"eval_i2t_r1_vs_round.png", "eval_i2t_r1_vs_comm_mb.png"})
    # Every name the validator accepts as a metric is really reported by the trainable.
    cfg = load_sweep(SMOKE).checked[0]
    for result in _last_results(sweep):
        assert reported_metrics(cfg) <= set(result), reported_metrics(cfg) - set(result)
        assert result["round"] == 2 and result["training_iteration"] == 2


def _metric_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def test_interrupted_beta_sweep_resumes_finished_trials_untouched_and_the_cut_trial_from_its_checkpoint(
        ray_local, one_thread, tmp_path):
    """The β sweep on tiny, one trial at a time: Ctrl-C lands in the second trial after its round 3. On resume
    the finished trial is not rerun, the cut one continues from its fedray checkpoint (earlier rounds are not
    recomputed) and ends with an uninterrupted run's weights; the report then compares the two β values."""
    sweep = tmp_path / "beta"
    address = ray_local.get_runtime_context().gcs_address  # the CLI joins the test's Ray: no second cluster
    cmd = [sys.executable, "-m", "fedray.cli", "tune", BETA, "--out", str(sweep), "--address", address]
    cmd += [a for s in BETA_SETS for a in ("--set", s)]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 1800  # a safety bound only: the trials' progress decides
        # With one trial at a time, the second starting means Tune has recorded the first as finished; row 3 of
        # the second is written after its round-2 checkpoint (events, not times).
        while True:
            trials = [p.parent for p in sweep.glob("trials/*/trial.json")]
            done = [t for t in trials if "finished_at" in (t / "trial.json").read_text()]
            cut = [t for t in trials if t not in done and len(_metric_rows(t / "run")) >= 3]
            if done and cut:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment state and stops
        assert proc.wait(timeout=900) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (first,), (trial,) = done, cut
    files = {p.relative_to(first): p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    assert Path("run/summary.json") in files
    output = (tmp_path / "first.log").read_text()
    assert "1 trial(s) unfinished; continue with: fedray tune" in output and "--resume" in output
    before = _metric_rows(trial / "run")
    assert 3 <= len(before) < 8 and not (trial / "run" / "summary.json").exists(), "the trial should stop mid-run"

    assert main(["tune", BETA, "--resume", "--out", str(sweep)]) == 0

    # The finished trial: not touched. The cut one: continued in place from its checkpoint.
    assert {p.relative_to(first): p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == files
    assert [p.name for p in first.glob("run*")] == ["run"] and [p.name for p in trial.glob("run*")] == ["run"]
    after = _metric_rows(trial / "run")
    assert [r["round"] for r in after] == list(range(1, 9))
    assert [r for r in after if r["round"] <= 2] == before[:2], "rounds before the checkpoint were recomputed"
    assert json.loads((trial / "trial.json").read_text())["resumed_from_round"] >= 2
    reference = run_experiment(load_config(str(trial / "run" / "config.yaml"), overrides=[
        "runtime.backend=local", "runtime.torch_threads=1"]), str(tmp_path / "reference"), progress=lambda _: None)
    resumed = load_file(str(trial / "run" / "model.safetensors"))
    assert resumed.keys() == reference.state.keys()
    assert [n for n in resumed if not np.array_equal(resumed[n], reference.state[n])] == []

    # The report: both β values, as each trial really ran them; label skew grows as β falls.
    rows = _rows(sweep)
    assert sorted((r["train.method"], float(r["data.partition.beta"])) for r in rows) == [("lw", 0.05), ("lw", 5.0)]
    assert all(r["data.partition.kind"] == "dirichlet" and r["status"] == "complete" for r in rows)
    for r in _last_results(sweep):  # what Tune recorded as the trial's config matches what the trial says it ran
        assert (r["config"]["train.method"], r["config"]["data.partition.beta"]) == (r["method"], r["beta"])
    _check_pngs(sweep, {"eval_i2t_r1_vs_beta.png", "eval_i2t_r1_vs_round.png"})
    entropy = {}
    for r in rows:
        part = json.loads((sweep / "trials" / r["trial"] / "run" / "partition.json").read_text())
        assert (part["kind"], part["beta"]) == ("dirichlet", float(r["data.partition.beta"]))
        entropy[part["beta"]] = sum(c["label_entropy"] for c in part["clients"]) / len(part["clients"])
    assert entropy[0.05] < entropy[5.0]


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository's runs/
