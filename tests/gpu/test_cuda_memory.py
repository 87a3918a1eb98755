"""On a CUDA GPU: the CPU memory model against torch.cuda.max_memory_allocated (skipped without CUDA)."""

from __future__ import annotations

import json

import pytest
import torch

from fedray.cli import main
from fedray.config import load_config
from fedray.model import build_model
from fedray.resources.estimate import WORKLOADS, measure_stage
from fedray.schedules import build_schedule

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("method", ["fedmml", "lw"])
def test_memory_model_is_within_25_percent_of_cuda_max_allocated(method):
    cfg = load_config(preset="paper-coco", overrides=[f"train.method={method}"])  # batch 32, the paper's shapes
    inputs = WORKLOADS["paper-coco"].inputs
    model = build_model(cfg.model, {m: inputs for m in cfg.model.towers}, cfg.train.seed)
    stage = build_schedule(cfg)[-1]  # full depth: FedMML trains everything, LW its last blocks and heads
    cost, cuda_bytes = measure_stage(model, cfg, stage, inputs, torch.device("cuda"))
    print(f"{method}: CPU model {cost.memory_bytes / 2**20:.1f} MiB, cuda max allocated {cuda_bytes / 2**20:.1f} MiB")
    assert cuda_bytes > 0
    assert abs(cost.memory_bytes - cuda_bytes) <= 0.25 * cuda_bytes


def test_resources_cli_reports_both_memory_figures_on_cuda(capsys):
    assert main(["resources", "--preset", "tiny", "--device", "cuda", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for totals in report["methods"].values():
        assert totals["peak_memory_bytes"] > 0 and totals["cuda_max_memory_allocated"] > 0
