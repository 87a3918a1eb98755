"""Server optimisers end to end (one through a real local Ray), lw across a stage boundary: moments of newly
trainable tensors start at zero, those of tensors no longer exchanged are dropped, and a resumed run ends
bit-identical."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch

from fedray.api import resume_experiment, run_experiment
from fedray.plan import plan_run
from fedray.server import build_server

OVERRIDES = ["train.rounds=[2, 2]", "runtime.torch_threads=1", "data.train_limit=64", "train.batch_size=16"]


def _aggregator(data: bytes) -> dict[str, np.ndarray]:
    return {n: t.numpy() for n, t in torch.load(io.BytesIO(data), weights_only=True)["state"]["aggregator"].items()}


# One optimiser through the server actor (its moments travel in the checkpoint the actor streams); the two others
# in-process, where the same aggregator code runs (Ray's runs equal in-process ones: test_fedavg_reference_ray.py).
@pytest.mark.parametrize("strategy,backend", [("fedadam", "ray"), ("fedavgm", "local"), ("fedyogi", "local")])
def test_server_optimiser_across_a_stage_boundary(ray_local, one_thread, tiny, tmp_path, strategy, backend):
    cfg = tiny(f"train.strategy={strategy}", *OVERRIDES, f"runtime.backend={backend}")
    full_dir = tmp_path / "full"
    saved: dict[int, bytes] = {}

    def keep_checkpoint(record):  # when round r's record arrives, round r-1's checkpoint is on disk
        if record["round"] > 1:
            saved[record["round"] - 1] = (full_dir / "checkpoint.pt").read_bytes()

    full = run_experiment(cfg, str(full_dir), progress=lambda _: None, on_record=keep_checkpoint)
    saved[4] = (full_dir / "checkpoint.pt").read_bytes()
    ctx, _, _ = build_server(plan_run(cfg))
    first, second = ctx.schedule
    params = ctx.aggregator.params
    moments = ("m",) if strategy == "fedavgm" else ("m", "v")

    def keys(stage):
        return {f"{k}/{n}" for n in ctx.names(stage.exchanged) if n in params for k in moments}

    stage_one, stage_two = _aggregator(saved[2]), _aggregator(saved[3])
    assert set(stage_one) == keys(first) and set(stage_two) == keys(second)
    assert any(n.startswith("m/towers.image.blocks.0.") for n in stage_one)  # trained in stage 1 ...
    assert not any(n.startswith("m/towers.image.blocks.0.") for n in stage_two)  # ... frozen in 2: dropped
    if strategy != "fedavgm":
        # One update from zero moments gives v = (1 - b2) / (1 - b1)^2 * m^2 exactly (up to float32 storage).
        b1, b2 = cfg.train.strategy.beta1, cfg.train.strategy.beta2
        new = [n for n in ctx.names(second.exchanged - first.exchanged) if n in params]
        kept = [n for n in ctx.names(second.exchanged & first.exchanged) if n in params]
        assert new and kept

        def zero_start(n):
            m = stage_two[f"m/{n}"].astype(np.float64)
            return np.allclose(stage_two[f"v/{n}"], (1 - b2) / (1 - b1) ** 2 * m * m, rtol=1e-4, atol=1e-12)

        assert all(zero_start(n) for n in new)
        assert not all(zero_start(n) for n in kept)  # the check tells a zero start from a continued moment

    # Resume from the checkpoint after round 3 (in-process this time): the same weights and moments.
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(full_dir, resumed_dir)
    for name in ("summary.json", "model.safetensors"):
        (resumed_dir / name).unlink()
    (resumed_dir / "checkpoint.pt").write_bytes(saved[3])
    resumed = resume_experiment(str(resumed_dir), tiny(f"train.strategy={strategy}", *OVERRIDES,
                                                       "runtime.backend=local"), progress=lambda _: None)
    assert [r["round"] for r in resumed.rows] == [1, 2, 3, 4]
    assert [n for n in full.state if not np.array_equal(full.state[n], resumed.state[n])] == []
    end, again = _aggregator(saved[4]), _aggregator((resumed_dir / "checkpoint.pt").read_bytes())
    assert end.keys() == again.keys() and all(np.array_equal(end[n], again[n]) for n in end)
