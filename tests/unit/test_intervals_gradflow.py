"""Seeds with intervals, single-run bootstrap intervals, and the gradient-flow instruments (pure logic + a
local-backend compare)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from fedray.compare import compare, seed_rows, t975, to_markdown
from fedray.training.evaluate import bootstrap_ci95, recall_at_k, recall_hits
from fedray.training.gradflow import CLIENT_UPDATE, UPDATE, group_norms, mean_norms


def test_seed_rows_mean_and_student_t_interval():
    runs = [[{"method": "lw", "i2t_r10": v, "comm_mb": 5.0}] for v in (0.30, 0.40, 0.50)]
    (row,) = seed_rows(runs)
    sd = math.sqrt(((0.30 - 0.40) ** 2 + (0.50 - 0.40) ** 2) / 2)
    assert row["i2t_r10"] == pytest.approx(0.40)
    assert row["i2t_r10_ci95"] == pytest.approx(4.303 * sd / math.sqrt(3))  # t(0.975, 2)
    assert row["comm_mb"] == 5.0 and "comm_mb_ci95" not in row  # a figure seeds do not change has no interval
    assert row["seeds"] == 3
    assert "0.400 ± 0.248" in to_markdown([row])


def test_t_quantiles_are_conservative_between_table_entries():
    assert t975(1) == 12.706 and t975(11) == t975(10) and t975(100) == 1.96


def test_bootstrap_interval_matches_the_binomial_width():
    hits = (torch.arange(400) % 5 == 0).double()  # p = 0.2 over 400 queries
    hw = bootstrap_ci95(hits)
    assert hw == pytest.approx(1.96 * math.sqrt(0.2 * 0.8 / 400), rel=0.15)
    assert bootstrap_ci95(hits) == hw  # seeded
    assert bootstrap_ci95(torch.ones(50, dtype=torch.double)) == 0.0


def test_recall_hits_mean_is_recall():
    torch.manual_seed(0)
    q, g = torch.randn(30, 8), torch.randn(30, 8)
    assert {k: v.mean().item() for k, v in recall_hits(q, g).items()} == recall_at_k(q, g)


def test_group_norms_by_group_cover_parameters_only():
    old = {"a.w": np.zeros(4, np.float32), "a.b": np.zeros(2, np.float32), "c.w": np.ones(3, np.float32),
           "n.count": np.array(3, np.int64)}
    new = {"a.w": np.full(4, 1.0, np.float32), "a.b": np.full(2, 2.0, np.float32), "c.w": np.ones(3, np.float32),
           "n.count": np.array(9, np.int64)}
    norms = group_norms(new, old, lambda n: n.split(".")[0], {"a.w", "a.b", "c.w"})  # n.count: a buffer
    assert norms == pytest.approx({"a": math.sqrt(4 + 8), "c": 0.0})
    assert mean_norms([{"a": 1.0}, {"a": 3.0, "c": 2.0}]) == {"a": 2.0, "c": 2.0}


def test_compare_with_seeds_writes_runs_intervals_and_gradient_flow(tiny, tmp_path):
    cfg = tiny("runtime.backend=local", "train.rounds=[1, 1]")
    root, rows = compare(cfg, str(tmp_path / "cmp"), progress=lambda _: None, methods=("fedmml", "lw"), seeds=2)
    runs = list(csv.DictReader(open(tmp_path / "cmp" / "runs.csv")))
    assert [(r["seed"], r["method"]) for r in runs] == [("42", "fedmml"), ("42", "lw"), ("43", "fedmml"), ("43", "lw")]
    assert (tmp_path / "cmp" / "seed-43" / "lw" / "summary.json").exists()
    for row in rows:  # the mean of the two seeds' figures
        mine = [float(r["i2t_r10"]) for r in runs if r["method"] == row["method"]]
        assert row["i2t_r10"] == pytest.approx(sum(mine) / 2) and row["seeds"] == 2
    assert "mean over 2 seeds" in (tmp_path / "cmp" / "comparison.md").read_text()
    assert (tmp_path / "cmp" / "gradient_flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_round_rows_carry_update_norms_of_the_trained_groups_only(tiny, tmp_path):
    from fedray.api import run_experiment

    result = run_experiment(tiny("runtime.backend=local", "train.method=lw", "train.rounds=[1, 1]"),
                            str(tmp_path / "run"), progress=lambda _: None)
    first, second = result.rows
    trained1 = {k[len(UPDATE):] for k in first if k.startswith(UPDATE)}
    trained2 = {k[len(UPDATE):] for k in second if k.startswith(UPDATE)}
    assert "image.block.0" in trained1 and "image.block.0" not in trained2  # LW: stage 2 freezes group 0
    assert "image.block.1" in trained2 and all(second[UPDATE + g] > 0 for g in trained2)
    assert {k[len(CLIENT_UPDATE):] for k in second if k.startswith(CLIENT_UPDATE)} == trained2


def test_tune_report_aggregates_trials_that_differ_only_in_the_seed():
    from fedray.tune.report import over_seeds

    rows = [{"trial": f"t{i}", "status": "complete", "data.partition.beta": beta, "train.seed": seed,
             "eval/i2t_r10": r10, "comm_mb": 7.0, "started_at": 1.0}
            for i, (beta, seed, r10) in enumerate([(0.1, 1, 0.2), (0.1, 2, 0.4), (1.0, 1, 0.5), (1.0, 2, 0.5)])]
    rows.append({**rows[0], "trial": "t9", "status": "failed", "eval/i2t_r10": None})
    low, high = over_seeds(rows, ["data.partition.beta", "train.seed"])
    assert (low["data.partition.beta"], low["seeds"], low["eval/i2t_r10"]) == (0.1, 2, pytest.approx(0.3))
    assert low["eval/i2t_r10_ci95"] == pytest.approx(12.706 * math.sqrt(0.02) / math.sqrt(2))
    assert "eval/i2t_r10_ci95" not in high and "comm_mb_ci95" not in low and "started_at" not in low
    assert over_seeds(rows, ["data.partition.beta"]) == []  # no seed swept: nothing to aggregate


def test_the_cli_offers_every_benchmark():
    from fedray.bench import NAMES
    from fedray.cli import build_parser

    parser = build_parser()
    bench = next(a for a in parser._subparsers._group_actions[0].choices["bench"]._actions if a.dest == "name")
    assert tuple(bench.choices) == NAMES
