"""Client faults on a real local Ray: a killed actor, a client whose code raises, a straggler."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from fedray.api import run_experiment
from fedray.backend import RayFleet
from fedray.client import RoundTask
from fedray.config import load_config
from fedray.plan import plan_run
from fedray.server import ClientError, build_server

# 5 rounds of a few seconds each, one torch thread: a kill lands mid-round, and the arithmetic matches
# the in-process backend exactly.
SLOW = ["train.rounds=[2,3]", "train.local_epochs=4", "runtime.torch_threads=1", "runtime.client_cpus=0.5"]


def test_killed_client_actor_is_restarted_and_the_run_finishes(ray_local, tiny, tmp_path):
    cfg = tiny(*SLOW)
    stage_two = threading.Event()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None,
                                               on_record=lambda r: r["round"] == 3 and stage_two.set())
        except BaseException as err:  # surfaced by the assertions below
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    assert stage_two.wait(300), outcome
    namespace = json.loads((tmp_path / "run" / "ray.json").read_text())["namespace"]
    victim = ray_local.get_actor("fedray-client-001", namespace=namespace)
    time.sleep(0.2)  # round 4 started as soon as round 3's record was produced
    # Like a killed process: Ray restarts it, and the new process must get stage 2's frozen blocks back.
    ray_local.kill(victim, no_restart=False)
    worker.join(600)

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert [r["round"] for r in result.rows] == [1, 2, 3, 4, 5]
    assert sum(r["fault/client_failures"] for r in result.rows) == 1  # one kill, counted once (not again on restart)
    assert all(r["fault/completed"] == 2 for r in result.rows)  # min_completion 1.0: the lost client was retried
    assert all(math.isfinite(r["train/loss"]) for r in result.rows)
    assert all(0.0 <= v <= 1.0 for k, v in result.summary["metrics"].items() if k != "loss")
    # Retried with the same seed and re-synced frozen groups: the same weights as a run without faults.
    reference = run_experiment(tiny(*SLOW, "runtime.backend=local"), str(tmp_path / "ref"), progress=lambda _: None)
    for name, value in reference.state.items():
        assert np.array_equal(value, result.state[name]), name


@pytest.fixture(scope="module")
def fleet(ray_local):
    """One 2-host fleet for the tests below (the straggler test, last, leaves host 1 busy)."""
    plan = plan_run(load_config(preset="tiny", overrides=["runtime.torch_threads=1", "runtime.client_cpus=0.5"]))
    fleet = RayFleet(plan, f"fedray-test-{uuid.uuid4().hex[:6]}", 0.5, 0.0)
    ctx, _, state = build_server(plan)
    spec = ctx.schedule[0]
    payload = {n: state.tensors[n] for n in ctx.names(spec.exchanged)}
    yield fleet, spec, payload
    fleet.close()


def test_client_code_error_stops_the_round_naming_the_client(fleet):
    fleet, spec, payload = fleet
    tasks = [RoundTask(0, 0, spec, (0,)), RoundTask(1, 0, spec, (7,))]  # host 1 holds client 1, not 7

    with pytest.raises(ClientError) as err:
        fleet.run_round(tasks, payload, None)

    msg = str(err.value)
    assert msg.startswith("client(s) [7] failed in round 1:")
    assert "KeyError: 7" in msg and "fedray/client/host.py\", line" in msg and "\x1b[" not in msg


def test_straggler_is_dropped_when_min_completion_allows(ray_local, fleet):
    fleet, spec, payload = fleet
    tasks = [RoundTask(0, 0, spec, (0,)), RoundTask(1, 0, spec, (1,))]
    ref = ray_local.put(payload)
    _busy = [fleet.actors[1].train.remote(tasks[1], ref, []) for _ in range(300)]  # host 1 is stuck behind these
    fleet.timeout, fleet.min_completion = 2.0, 0.5

    round_ = fleet.run_round(tasks, payload, None)

    assert [r.host for r in round_.results] == [0] and round_.dropped == (1,) and round_.lost == ()
    assert round_.faults == {"fault/client_failures": 0, "fault/stragglers": 1, "fault/retries": 0,
                             "fault/completed": 1}
    fleet.min_completion = 1.0
    with pytest.raises(TimeoutError, match=r"round 1: clients \[1\] did not return within runtime.round_timeout=2s"):
        fleet.run_round(tasks, payload, None)


def test_a_client_that_stays_dead_is_dropped_or_stops_the_round(ray_local, fleet):
    fleet, spec, payload = fleet
    tasks = [RoundTask(0, 1, spec, (0,)), RoundTask(1, 1, spec, (1,))]
    ray_local.kill(fleet.actors[1], no_restart=True)  # gone for good: every retry fails
    fleet.timeout, fleet.min_completion = 60.0, 0.5

    round_ = fleet.run_round(tasks, payload, None)

    assert [r.host for r in round_.results] == [0] and round_.lost == (1,) and round_.dropped == ()
    assert round_.faults["fault/client_failures"] == 1
    fleet.min_completion = 1.0
    with pytest.raises(ClientError, match=r"round 2: only 1 of 2 clients returned after 3 retries "
                                          r"\(runtime.min_completion=1 needs 2\); client actors keep dying"):
        fleet.run_round(tasks, payload, None)
