"""The frozen-prefix cache never changes what is trained: bit-identical weights with it on and off, for the
contrastive task and for classification with every fusion, across an lw stage boundary (in-process fleet)."""

from __future__ import annotations

import numpy as np
import pytest

from fedray.api import run_experiment
from fedray.config import load_config

# Two lw stages of one round each: stage 2 trains on cached activations of the stage-1 groups (cache on).
LW = ["runtime.backend=local", "train.method=lw", "train.rounds=[1, 1]", "data.num_clients=2", "train.batch_size=16",
      "train.eval_every=100"]
SUPERVISED = LW + ["train.total_rounds=null", "data.train_limit=64", "data.eval_limit=32"] + [
    f"model.towers.{m}.{k}={v}" for m in ("image", "audio") for k, v in (("hidden_size", 32), ("intermediate_size", 32))]
CASES = {"contrastive": ("tiny", LW + ["data.train_limit=96", "model.towers.image.dropout=0.1"])}
CASES |= {f"classification-{f}": ("avdigits", SUPERVISED + [f"model.fusion={f}"])
          for f in ("concat", "add", "attention", "co_attention")}


@pytest.mark.parametrize("case", list(CASES))
def test_cache_on_and_off_train_identical_weights(case, tmp_path):
    preset, overrides = CASES[case]
    states = {mode: run_experiment(load_config(preset=preset, overrides=overrides + [f"runtime.cache_prefix={mode}"]),
                                   str(tmp_path / mode), progress=lambda _: None).state for mode in ("on", "off")}
    different = [n for n in states["off"] if not np.array_equal(states["on"][n], states["off"][n])]
    assert different == [], f"{len(different)} of {len(states['off'])} tensors differ, e.g. {different[:3]}"
