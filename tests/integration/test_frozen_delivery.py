"""Frozen prefix values reach Ray hosts once per stage: one ``ray.put`` per stage, one load per host per stage
(again after a restart), and the same weights as the in-process fleet."""

from __future__ import annotations

import uuid

import numpy as np
import torch

from fedray.api import run_experiment
from fedray.backend import RayFleet
from fedray.plan import plan_run
from fedray.server import Finished, RoundDone, build_server, run_rounds

# lw, 3 stages of one block each, 1 + 2 + 2 rounds, 2 client actors at one thread each.
OVERRIDES = ["train.stages=3", "train.rounds=[1, 2, 2]", "model.towers.image.num_layers=3",
             "model.towers.text.num_layers=3", "data.train_limit=64", "train.batch_size=16",
             "runtime.torch_threads=1", "runtime.client_cpus=0.5"]


def test_frozen_values_are_put_once_per_stage_and_loaded_once_per_host(ray_local, tiny, tmp_path):
    cfg = tiny(*OVERRIDES)
    plan = plan_run(cfg, 2.0)
    fleet = RayFleet(plan, f"fedray-test-{uuid.uuid4().hex[:6]}", 0.5, 0.0).wait_ready()
    try:
        ctx, evaluate, state = build_server(plan)
        events = run_rounds(state, ctx, fleet, evaluate, checkpoint_every=0)
        loads = []
        for event in events:
            if isinstance(event, RoundDone) and event.record["round"] == 4:  # stage 3 has started
                loads = [ray_local.get(a.frozen_loads.remote(), timeout=600) for a in fleet.actors]
                ray_local.kill(fleet.actors[1], no_restart=False)  # a restarted host holds no frozen values
            if isinstance(event, Finished):
                final = event.outcome.state
        after = [ray_local.get(a.frozen_loads.remote(), timeout=600) for a in fleet.actors]
    finally:
        fleet.close()

    assert fleet.frozen_puts == 2  # stages 2 and 3 (stage 1 freezes nothing), not one per round (4)
    assert loads == [2, 2]  # each host loaded stage 2's and stage 3's values once
    assert after == [2, 1]  # host 1 restarted after round 4: its new process loaded stage 3's values once
    threads = torch.get_num_threads()
    try:
        local = run_experiment(tiny(*OVERRIDES, "runtime.backend=local"), str(tmp_path / "local"),
                               progress=lambda _: None).state
    finally:
        torch.set_num_threads(threads)
    assert [n for n in local if not np.array_equal(local[n], final.tensors[n])] == []
