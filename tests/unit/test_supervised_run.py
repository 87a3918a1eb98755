"""End to end (in-process backend): the supervised image-audio task with each method, and three modalities."""

from __future__ import annotations

import json

import pytest

from fedray.api import run_experiment
from fedray.config import load_config

SMALL = ["runtime.backend=local", "data.train_limit=64", "data.eval_limit=40", "data.num_clients=2",
         "train.batch_size=16", "train.rounds=[1, 1]", "train.total_rounds=null", "train.local_epochs=1"]
SMALL += [f"model.towers.{m}.{k}={v}" for m in ("image", "audio") for k, v in (("hidden_size", 32), ("intermediate_size", 32))]


@pytest.mark.parametrize("method,fusion", [("fedmml", "attention"), ("lw", "co_attention"), ("prog", "add")])
def test_supervised_run_reports_accuracy_and_macro_f1(tmp_path, method, fusion):
    cfg = load_config(preset="avdigits", overrides=SMALL + [f"train.method={method}", f"model.fusion={fusion}"])
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda line: None)
    metrics = result.summary["metrics"]
    assert set(metrics) == {"loss", "accuracy", "macro_f1"}
    assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["accuracy"] * 40 == pytest.approx(round(metrics["accuracy"] * 40))
    assert any(name.startswith("fusion.") for name in result.state)
    partition = json.loads((tmp_path / "run" / "partition.json").read_text())
    assert partition["kind"] == "dirichlet" and len(partition["clients"]) == 2


def test_three_modalities_contrastive_run_covers_every_pair(tmp_path):
    cfg = load_config(preset="avdigits-trimodal", overrides=SMALL + ["model.towers.text.hidden_size=32"])
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda line: None)
    keys = set(result.summary["metrics"])
    for a in "ita":
        for b in "ita":
            if a != b:
                assert f"{a}2{b}_r1" in keys
