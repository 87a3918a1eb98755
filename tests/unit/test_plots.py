"""Sweep plots draw a legend only over labelled artists (matplotlib warns on an empty one)."""

from __future__ import annotations

import warnings

from fedray.tune.plots import make_plots
from fedray.tune.report import Trial


def test_plots_of_trials_without_the_metric_raise_no_legend_warning(tmp_path):
    config = {"train": {"method": "lw"}}
    trials = [Trial("a", "stopped", config, {"train.method": "lw"}, [{"round": 1, "stage": 1, "train/loss": 3.0}], None),
              Trial("b", "failed", config, {"train.method": "lw"}, [], None)]
    rows = [{"train.method": "lw", "data.partition.beta": 0.5, "comm_mb": 1.0, "gflops": None,
             "peak_memory_mb": None, "eval/i2t_r1": None} for _ in trials]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No artists with labels found to put in legend" fails the test
        files = make_plots(trials, rows, "eval/i2t_r1", tmp_path)

    assert [p.rsplit("/", 1)[1] for p in files] == ["eval_i2t_r1_vs_comm_mb.png"]
