"""Client faults on a real local Ray: a killed actor, a client whose code raises, a straggler."""

from __future__ import annotations

import json
import math
import time
import uuid

import numpy as np
import pytest

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
    killed: list[int] = []

    def kill_after_round_3(record: dict) -> None:
        # An event, not a time window: round 3's record has reached the driver, so the server is in round 4
        # (records stream while it goes on) and client 1 still has rounds 4 and 5 to train. Like a killed
        # process: Ray restarts it, and the new process must get stage 2's frozen blocks back.
        if record["round"] == 3:
            namespace = json.loads((tmp_path / "run" / "ray.json").read_text())["namespace"]
            ray_local.kill(ray_local.get_actor("fedray-client-001", namespace=namespace), no_restart=False)
            killed.append(record["round"])

    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None, on_record=kill_after_round_3)

    assert killed == [3]
    assert [r["round"] for r in result.rows] == [1, 2, 3, 4, 5]
    assert sum(r["fault/client_failures"] for r in result.rows) == 1  # one kill, counted once (not again on restart)
    assert all(r["fault/completed"] == 2 for r in result.rows)  # min_completion 1.0: the lost client was retried
    assert all(math.isfinite(r["train/loss"]) for r in result.rows)
    assert all(0.0 <= v <= 1.0 for k, v in result.summary["metrics"].items() if k != "loss")
    # Retried with the same seed and re-synced frozen groups: the same weights as a run without faults.
    reference = run_experiment(tiny(*SLOW, "runtime.backend=local"), str(tmp_path / "ref"), progress=lambda _: None)
    for name, value in reference.state.items():
        assert np.array_equal(value, result.state[name]), name


def test_a_host_killed_while_the_fleet_starts_is_restarted_and_trains(ray_local):
    """A client actor that dies while the fleet is being built (killed for memory, its node lost) is treated like
    one that dies later: Ray restarts it, the fleet waits for it, and its first round has every client."""
    from ray._private.state import actors as actor_table  # the GCS's view: restarts, without the dashboard

    plan = plan_run(load_config(preset="tiny", overrides=["runtime.torch_threads=1", "runtime.client_cpus=0.5"]))
    fleet = RayFleet(plan, f"fedray-test-{uuid.uuid4().hex[:6]}", 0.5, 0.0)  # their processes take seconds to start
    ids = [a._actor_id.hex() for a in fleet.actors]
    try:
        ray_local.kill(fleet.actors[1], no_restart=False)  # uncleanly, while it starts
        fleet.wait_ready()
        ctx, _, state = build_server(plan)
        spec = ctx.schedule[0]
        payload = {n: state.tensors[n] for n in ctx.names(spec.exchanged)}
        round_ = fleet.run_round([RoundTask(0, 0, spec, (0,)), RoundTask(1, 0, spec, (1,))], payload, None)
    finally:
        fleet.close()

    assert [r.host for r in round_.results] == [0, 1] and round_.lost == ()
    assert [actor_table(i)["NumRestarts"] for i in ids] == [0, 1]


def gate(ray):
    """A signal the test controls: ``wait()`` resolves once ``open()`` was called. A host actor task that
    takes ``gate.wait.remote()`` as its argument holds every later task of that actor (actor tasks from one
    caller run in submission order), so the host is a straggler exactly until the test says otherwise."""
    import asyncio

    class Gate:  # defined here, so Ray ships it by value (workers cannot import a test module)
        def __init__(self) -> None:
            self.event = asyncio.Event()

        async def wait(self) -> dict:
            await self.event.wait()
            return {}

        async def open(self) -> None:
            self.event.set()

    return ray.remote(num_cpus=0)(Gate).remote()


@pytest.fixture(scope="module")
def fleet(ray_local):
    """One 2-host fleet for the tests below (the last one kills host 1 for good)."""
    plan = plan_run(load_config(preset="tiny", overrides=["runtime.torch_threads=1", "runtime.client_cpus=0.5"]))
    fleet = RayFleet(plan, f"fedray-test-{uuid.uuid4().hex[:6]}", 0.5, 0.0).wait_ready()
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
    start = time.monotonic()
    fleet.run_round(tasks, payload, None)  # how long a round takes on this machine, now
    # The deadline is a generous multiple of that: host 0 always makes it, however loaded the machine.
    deadline = max(10.0, 10 * (time.monotonic() - start))
    signal = gate(ray_local)
    # host 1 is stuck until the gate opens: a call that waits on its argument holds the actor's later calls
    fleet.actors[1].__ray_call__.remote(lambda actor, _: None, signal.wait.remote())
    fleet.timeout, fleet.min_completion = deadline, 0.5
    try:
        round_ = fleet.run_round(tasks, payload, None)

        assert [r.host for r in round_.results] == [0] and round_.dropped == (1,) and round_.lost == ()
        assert round_.faults == {"fault/client_failures": 0, "fault/stragglers": 1, "fault/retries": 0,
                                 "fault/completed": 1}
        fleet.min_completion = 1.0
        with pytest.raises(TimeoutError, match=rf"round 1: clients \[1\] did not return within "
                                               rf"runtime.round_timeout={deadline:g}s"):
            fleet.run_round(tasks, payload, None)
    finally:
        ray_local.get(signal.open.remote())  # host 1 catches up on its queued rounds


def test_a_client_that_stays_dead_is_dropped_or_stops_the_round(ray_local, fleet):
    fleet, spec, payload = fleet
    tasks = [RoundTask(0, 1, spec, (0,)), RoundTask(1, 1, spec, (1,))]
    ray_local.kill(fleet.actors[1], no_restart=True)  # gone for good: every retry fails
    # A safety bound only: the gather returns as soon as host 0 is done and host 1's death is known.
    fleet.timeout, fleet.min_completion = 1800.0, 0.5

    round_ = fleet.run_round(tasks, payload, None)

    assert [r.host for r in round_.results] == [0] and round_.lost == (1,) and round_.dropped == ()
    assert round_.faults["fault/client_failures"] == 1
    fleet.min_completion = 1.0
    with pytest.raises(ClientError, match=r"round 2: only 1 of 2 clients returned after 3 retries "
                                          r"\(runtime.min_completion=1 needs 2\); client actors keep dying"):
        fleet.run_round(tasks, payload, None)
