"""The ledger of a real tiny run (in-process fleet): exact bytes, FLOPs per round, summary totals,
and the ``fedray resources`` estimate agreeing with what the run recorded."""

from __future__ import annotations

import json

import pytest
import torch

from fedray.api import RunResult, run_experiment
from fedray.cli import main
from fedray.compare import comparison_rows
from fedray.data import open_dataset
from fedray.resources import analytic
from fedray.plan import workload_of
from fedray.resources.estimate import estimate
from fedray.schedules import build_schedule


def test_lw_run_records_exact_bytes_flops_and_matches_the_estimate(tiny, tmp_path):
    cfg = tiny("runtime.backend=local", "train.method=lw")  # 2 clients x 128 rows, batch 32: 4 steps a round
    inputs = open_dataset(cfg.data.source).inputs
    params = analytic.group_params(cfg, inputs, 16)
    first, second = build_schedule(cfg)

    def size(groups):  # fp32, and the tiny model has no buffers
        return 4 * sum(params[g] for g in groups)

    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    r1, r2 = result.rows

    assert r1["comm/bytes_to_clients"] == r1["comm/bytes_from_clients"] == 2 * size(first.exchanged)
    # Stage 2: the new exchanged groups both ways, plus the stage-1 groups now frozen, sent once.
    assert r2["comm/bytes_from_clients"] == 2 * size(second.exchanged)
    assert r2["comm/bytes_to_clients"] == 2 * (size(second.exchanged) + size(first.trainable & second.frozen))
    for row, stage in ((r1, first), (r2, second)):
        assert row["res/flops"] == 2 * 4 * analytic.step_flops(cfg, stage, inputs, 16, 32)
        assert row["res/stage_flops"] == row["res/flops"]
    assert r2["res/total_flops"] == r1["res/flops"] + r2["res/flops"]
    assert r1["res/peak_memory_bytes"] > r2["res/peak_memory_bytes"] > 0  # stage 1 also trains the embeddings

    resources = json.loads((tmp_path / "run" / "summary.json").read_text())["resources"]
    assert resources == {"comm_bytes": r2["comm/total_bytes"], "flops": r2["res/total_flops"],
                         "peak_memory_bytes": r1["res/peak_memory_bytes"]}

    # The estimate models one client in every round; this run has two identical clients.
    est = estimate(cfg, workload_of(cfg, None), methods=("lw",))["methods"]["lw"]
    assert 2 * est["comm_bytes"] == resources["comm_bytes"]
    assert 2 * est["flops"] == resources["flops"] == 2 * est["analytic_flops"]
    assert est["peak_memory_bytes"] == resources["peak_memory_bytes"]


def test_resources_cli_prints_json_with_ratios(capsys):
    assert main(["resources", "--preset", "tiny", "--json", "--set", "train.batch_size=16"]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    # Progress while it measures (a paper preset takes minutes): one line per stage, i of 5, on stderr.
    progress = [line.split(" | ")[0] for line in printed.err.splitlines() if line.startswith("[resources] ")]
    assert [p.split(": step")[0] for p in progress] == [
        "[resources] 1/5 fedmml stage 1", "[resources] 2/5 lw stage 1", "[resources] 3/5 lw stage 2",
        "[resources] 4/5 prog stage 1", "[resources] 5/5 prog stage 2"]
    assert "MiB (modelled)" in progress[0]
    assert set(report["methods"]) == {"fedmml", "lw", "prog"}
    for totals in report["methods"].values():
        assert {"comm_bytes", "flops", "peak_memory_bytes"} <= set(totals)
    lw, fedmml = report["methods"]["lw"], report["methods"]["fedmml"]
    assert report["ratios"]["fedmml/lw"]["flops"] == fedmml["flops"] / lw["flops"] > 1
    assert fedmml["peak_memory_bytes"] > lw["peak_memory_bytes"]
    assert [(s["method"], s["stage"]) for s in report["stages"]] == [
        ("fedmml", 1), ("lw", 1), ("lw", 2), ("prog", 1), ("prog", 2)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests/gpu covers the CUDA path")
def test_resources_cli_refuses_cuda_without_a_gpu(capsys):
    assert main(["resources", "--preset", "tiny", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_compare_rows_show_resources_and_ratios_to_fedmml():
    def result(comm, flops, mem):
        summary = {"metrics": {}, "wall_time_s": 1.0,
                   "resources": {"comm_bytes": comm, "flops": flops, "peak_memory_bytes": mem}}
        return RunResult("", summary, [], {})

    rows = comparison_rows({"fedmml": result(4e6, 8e9, 2**22), "lw": result(2e6, 2e9, 2**21)})
    lw = rows[1]
    assert (lw["comm_mb"], lw["gflops"], lw["train_mem_mib"]) == (2.0, 2.0, 2.0)
    assert (lw["comm_vs_fedmml"], lw["flops_vs_fedmml"], lw["mem_vs_fedmml"]) == (2.0, 4.0, 2.0)
