"""``fedray report`` on plain run directories (local backend, no Ray): table rows and real PNGs."""

from __future__ import annotations

import csv
import json
import shutil

from PIL import Image

from fedray.api import run_experiment
from fedray.cli import main
from fedray.tune.metrics import eval_metrics


def test_report_on_run_dirs(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    for method in ("lw", "prog"):
        cfg = tiny("runtime.backend=local", "runtime.torch_threads=1", f"train.method={method}")
        run_experiment(cfg, str(runs / method), progress=lambda line: None)
    (runs / "broken").mkdir()  # a run that died before its first round: config.yaml and FAILED only
    (runs / "broken" / "config.yaml").write_text((runs / "lw" / "config.yaml").read_text())
    (runs / "broken" / "FAILED").write_text("RuntimeError: boom\n")

    assert main(["report", str(runs), "--out", str(tmp_path / "rep")]) == 0

    last = json.loads((runs / "lw" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {k for k in last if k.startswith("eval/")} == eval_metrics(tiny())  # what sweeps may name as metric

    rows = list(csv.DictReader((tmp_path / "rep" / "trials.csv").open()))
    assert [(r["trial"], r["status"], r["train.method"]) for r in rows] == [
        ("broken", "failed", "lw"), ("lw", "complete", "lw"), ("prog", "complete", "prog")]
    summary = json.loads((runs / "prog" / "summary.json").read_text())
    assert float(rows[2]["eval/i2t_r1"]) == summary["metrics"]["i2t_r1"]
    assert float(rows[2]["comm_mb"]) == summary["resources"]["comm_bytes"] / 1e6
    assert "| lw | complete | lw |" in (tmp_path / "rep" / "trials.md").read_text()
    pngs = sorted(p.name for p in (tmp_path / "rep" / "plots").glob("*.png"))
    assert pngs == ["eval_i2t_r1_vs_comm_mb.png", "eval_i2t_r1_vs_gflops.png", "eval_i2t_r1_vs_peak_memory_mb.png",
                    "eval_i2t_r1_vs_round.png"]  # one β: no β plot; the resource ledger gives the other two
    assert float(rows[2]["gflops"]) > 0 and float(rows[2]["peak_memory_mb"]) > 0
    for name in pngs:
        with Image.open(tmp_path / "rep" / "plots" / name) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 300
    assert str(tmp_path / "rep" / "trials.csv") in capsys.readouterr().out


def test_report_picks_the_finished_attempt_of_a_resumed_trial(tiny, tmp_path):
    done = run_experiment(tiny("runtime.backend=local", "runtime.torch_threads=1"), str(tmp_path / "done"),
                          progress=lambda line: None)
    trial = tmp_path / "sweep" / "trials" / "abc_00000"
    shutil.copytree(done.run_dir, trial / "run~2")  # the rerun after an interrupt finished
    interrupted = shutil.ignore_patterns("summary.json")
    shutil.copytree(done.run_dir, trial / "run", ignore=interrupted)
    (trial / "trial.json").write_text(json.dumps({"trial_id": "abc_00000", "params": {"train.method": "lw"},
                                                  "started_at": 1.0, "finished_at": 2.0}))
    (trial.parent.parent / "sweep.yaml").write_text("search_space: {train.method: {grid: [lw]}}\n")

    assert main(["report", str(tmp_path / "sweep")]) == 0

    (row,) = csv.DictReader((tmp_path / "sweep" / "trials.csv").open())
    assert (row["trial"], row["status"], row["wall_s"]) == ("abc_00000", "complete", str(done.summary["wall_time_s"]))
    assert list(row)[:3] == ["trial", "status", "train.method"]  # swept keys first


def test_report_rejects_other_dirs(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path}: not a sweep, compare or run directory" in capsys.readouterr().err
