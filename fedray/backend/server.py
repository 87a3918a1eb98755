"""The ``fedray-server`` actor: the round loop next to its RayFleet, streaming the loop's events to the driver."""

from __future__ import annotations

from collections.abc import Iterator

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.backend.errors import reraise_user_error
from fedray.backend.fleet import RayFleet, end_actors
from fedray.backend.metrics import RunMetrics
from fedray.backend.session import client_resources
from fedray.plan import RunPlan
from fedray.server import ClientError, Event, RoundDone, ServerState, build_server, run_rounds


class ServerActor:
    """Runs :func:`fedray.server.run_rounds` over a RayFleet; the events go out unchanged."""

    def __init__(self, plan: RunPlan, namespace: str, cpus: float, gpus: float, state: ServerState | None) -> None:
        torch.set_num_threads(1)
        self.plan = plan
        self.fleet: RayFleet | None = None
        self.error: Exception | None = None
        try:
            self.metrics = RunMetrics(plan.cfg.name, plan.cfg.train.method, run_id=namespace)
            self.fleet = RayFleet(plan, namespace, cpus, gpus, self.metrics)  # client actors start ...
            self.ctx, self.evaluate, initial = build_server(plan)  # ... while this process builds its own model
            self.fleet.wait_ready()
            self.state = state or initial
        except Exception as err:  # noqa: BLE001 - re-raised by run(), whole
            # Ray keeps only the text of a constructor's error (ActorDiedError); a method's error travels as the
            # object itself, so a bad row or a client's failure reaches the driver with its fields.
            self.error = err

    def run(self) -> Iterator[Event]:
        try:
            if self.error is not None:
                raise self.error
            assert self.fleet is not None
            for event in run_rounds(self.state, self.ctx, self.fleet, self.evaluate, self.plan.cfg.runtime.checkpoint_every):
                if isinstance(event, RoundDone):
                    self.metrics.on_round(event.record)
                yield event
        finally:
            if self.fleet is not None:
                self.fleet.close()


def run_on_ray(plan: RunPlan, namespace: str, state: ServerState | None = None) -> Iterator[Event]:
    """Start the server actor (it starts the client actors), and stream its events (last: ``Finished``).

    ``plan`` is packed already; ``state``: a checkpoint's server state to continue from.
    """
    # Inside a placement group (a Tune trial) the server must land in the group's bundles, which
    # pinning it to this node would bypass (a deadlock); the client actors land there too.
    in_group = ray.util.get_current_placement_group() is not None
    node = ray.get_runtime_context().get_node_id()
    cpus, gpus = client_resources(plan.cfg.runtime, len(plan.hosts))  # fails here, before any actor starts
    # The server is pinned to this node and starts the client actors itself, so it is placed before them: client
    # actors started first may take this node's CPUs (Ray's default scheduling prefers the caller's node), and the
    # pinned server then waits forever for a place (seen on a multi-node cluster; tests/integration/
    # test_node_failure.py). Its own death ends the client actors it owns.
    server = ray.remote(ServerActor).options(
        name="fedray-server", namespace=namespace, num_cpus=plan.cfg.runtime.server_cpus, num_gpus=0,
        scheduling_strategy=None if in_group else NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(plan, namespace, cpus, gpus, state)
    ended = False
    try:
        # At most one event ahead of this driver: a round's record is handled here (rows written, on_record: Tune's
        # report, a test's fault) before the next round starts, and checkpoints do not pile up in the object store.
        for ref in server.run.options(num_returns="streaming", _generator_backpressure_num_objects=1).remote():
            yield ray.get(ref)
        ended = True
    except ray.exceptions.RayError as err:  # RayTaskError from the loop; ActorDiedError if the actor itself died
        reraise_user_error(err)  # bad data, a non-finite value, a config error: one line, with its fields
        if isinstance(err, ray.exceptions.RayTaskError) and isinstance(err.cause, (ClientError, TimeoutError)):
            raise err.cause from None  # the server's own message, without Ray's wrapping
        raise
    finally:
        if ended:  # the server's fleet.close() has ended the hosts; the server ends the same clean way
            end_actors([server])
        else:  # an error or an interrupt: stop everything now (the client actors end with their owner)
            ray.kill(server)
