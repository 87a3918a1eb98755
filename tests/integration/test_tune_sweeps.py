"""Real Ray Tune sweeps on 2 CPUs: concurrency in placement groups, resume after an interrupt, the β sweep."""

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

import pytest
from PIL import Image

from fedray.cli import main
from fedray.tune.metrics import reported_metrics
from fedray.tune.spec import load_sweep

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "tune_configs" / "smoke.yaml")


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


def test_smoke_sweep_runs_two_trials_at_once(ray_local, tmp_path, capsys):
    sweep = tmp_path / "smoke"

    assert main(["tune", SMOKE, "--out", str(sweep)]) == 0

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


def test_interrupted_sweep_resumes_without_rerunning_finished_trial(ray_local, tmp_path):
    sweep = tmp_path / "resumed"
    address = ray_local.get_runtime_context().gcs_address  # the CLI joins the test's Ray: no second cluster
    cmd = [sys.executable, "-m", "fedray.cli", "tune", SMOKE, "--out", str(sweep), "--set", "max_concurrent_trials=1",
           "--address", address]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 1800  # a safety bound: the trials' progress decides
        # Interrupt once the second trial has started: with one trial at a time, Tune has then recorded the
        # first as TERMINATED (a finished run on disk alone can precede Tune's own view of it).
        while True:
            trials = list(sweep.glob("trials/*/trial.json"))
            done = [p for p in trials if "finished_at" in p.read_text()]
            if len(trials) >= 2 and done:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment state and stops
        assert proc.wait(timeout=900) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = done[0].parent
    before = {p.relative_to(first): p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    assert (first / "run" / "summary.json") in {first / p for p in before}
    output = (tmp_path / "first.log").read_text()
    assert "1 trial(s) unfinished; continue with: fedray tune" in output and "--resume" in output

    assert main(["tune", SMOKE, "--resume", "--out", str(sweep)]) == 0

    rows = _rows(sweep)
    assert sorted(r["train.method"] for r in rows) == ["lw", "prog"]
    assert all(r["status"] == "complete" for r in rows)
    after = {p.relative_to(first): p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    assert after == before, "the finished trial was touched on resume"
    assert [p.name for p in first.glob("run*")] == ["run"]


def test_beta_sweep_on_tiny(ray_local, tmp_path, caplog):
    sweep = tmp_path / "beta"
    caplog.set_level(logging.WARNING, logger="fedray")

    # Reduced to 2 trials to keep CI short: 2 values of β, one method (the smoke sweep covers two methods).
    assert main(["tune", str(REPO / "tune_configs" / "beta_sweep.yaml"), "--out", str(sweep),
                 "--set", "base.preset=tiny", "--set", "search_space.data.partition.beta={grid: [0.05, 5]}",
                 "--set", "search_space.train.method={grid: [prog]}", "--set", "max_concurrent_trials=8"]) == 0

    # A trial reserves 0.1 (trainable) + 0.1 (server) + 2 x 0.1 CPUs: 5 fit on 2 CPUs, so 8 is lowered.
    assert "max_concurrent_trials=8 but the cluster holds only 5 trial(s)" in caplog.text
    rows = _rows(sweep)
    assert sorted((r["train.method"], float(r["data.partition.beta"])) for r in rows) == [("prog", 0.05), ("prog", 5.0)]
    assert all(r["data.partition.kind"] == "dirichlet" and r["status"] == "complete" for r in rows)
    results = _last_results(sweep)
    assert sorted((r["method"], r["beta"], r["partition"]) for r in results) == [
        ("prog", 0.05, "dirichlet"), ("prog", 5.0, "dirichlet")]
    for r in results:  # what Tune recorded as the trial's config matches what the trial says it ran
        assert (r["config"]["train.method"], r["config"]["data.partition.beta"]) == (r["method"], r["beta"])
    _check_pngs(sweep, {"eval_i2t_r1_vs_beta.png", "eval_i2t_r1_vs_round.png"})
    entropy = {}  # the partition each trial really ran with: label skew grows as β falls
    for r in rows:
        part = json.loads((sweep / "trials" / r["trial"] / "run" / "partition.json").read_text())
        assert (part["kind"], part["beta"]) == ("dirichlet", float(r["data.partition.beta"]))
        entropy[part["beta"]] = sum(c["label_entropy"] for c in part["clients"]) / len(part["clients"])
    assert entropy[0.05] < entropy[5.0]


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository's runs/
