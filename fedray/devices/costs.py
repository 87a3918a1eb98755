"""Each stage's cost for one client, measured once per run on the driver: peak training memory and step FLOPs.

The same measurement as ``fedray resources`` (:func:`fedray.resources.estimate.measure_stage`: one real step on a
synthetic batch of the real shapes at ``train.batch_size``, CPU memory model), so eligibility uses the figures
that command prints, and a client's round FLOPs are known before it trains: ``step_flops x steps``, which is
exactly what the ledger charges it (every step of a stage has the same shapes, ``drop_last``).
"""

from __future__ import annotations

import numpy as np
import torch

from fedray.config import ExperimentConfig
from fedray.model import InputSpec, build_model
from fedray.resources.estimate import measure_stage
from fedray.resources.meter import StepCost
from fedray.schedules import StageSpec


def stage_costs(cfg: ExperimentConfig, schedule: list[StageSpec], inputs: InputSpec) -> dict[int, StepCost]:
    """One step's cost per stage with rounds (stage index -> cost); identical stages are measured once.

    Builds its own model from the seed and leaves torch's global RNG as it found it, so a run's numerics do
    not depend on whether this ran.
    """
    out: dict[int, StepCost] = {}
    cache: dict[tuple, StepCost] = {}
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg.model, {m: inputs for m in cfg.model.towers}, cfg.train.seed)
        for spec in schedule:
            if spec.rounds == 0:
                continue
            key = (tuple(sorted(spec.depths.items())), spec.trainable)
            if key not in cache:
                cache[key] = measure_stage(model, cfg, spec, inputs, torch.device("cpu"))[0]
            out[spec.index] = cache[key]
    return out


def local_steps(shard_sizes: list[int] | np.ndarray, local_epochs: int, batch_size: int) -> np.ndarray:
    """Local steps per round per client: local_epochs x floor(shard / batch) (``drop_last``, as local training)."""
    return local_epochs * (np.asarray(shard_sizes, dtype=np.int64) // batch_size)
