"""RayFleet: client hosts as Ray actors; one ``ray.put`` per round, bounded gathers."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.backend.actors import HostActor, ServerActor
from fedray.backend.session import client_resources
from fedray.client import HostResult, RoundTask
from fedray.plan import RunPlan, repack
from fedray.server.fleet import ClientError

log = logging.getLogger("fedray")


class RayFleet:
    """One actor per client host, created once per run and kept for every round.

    Faults: an actor that dies is restarted by Ray (``runtime.client_restarts``; its constructor decodes
    the shard again). The round completes once ``runtime.min_completion`` of the cohort returned, retrying
    lost clients' tasks while that is not reached; stragglers past ``round_timeout`` are dropped the same
    way. Counts go into the round's record (``fault/*``). A client whose code raises stops the run.
    """

    def __init__(self, plan: RunPlan, namespace: str, cpus: float, gpus: float, metrics: Any = None) -> None:
        rt = plan.cfg.runtime
        self.actors = start_hosts(plan, namespace, cpus, gpus)  # the driver may have started them already
        self.timeout = rt.round_timeout
        self.min_completion = rt.min_completion
        self.retries = rt.client_restarts
        self.metrics = metrics
        self.frozen_state: Callable[[Any], dict[str, np.ndarray]] | None = None  # set by the server actor
        self._trained: set[int] = set()  # hosts that trained at least once (a fresh one then restarted)
        self._faults: dict[str, int] = {}
        ready = [a.ready.remote() for a in self.actors]
        done, pending = ray.wait(ready, num_returns=len(ready), timeout=max(self.timeout, 120.0))
        if pending:
            raise TimeoutError(f"{len(pending)} client actors did not start within {max(self.timeout, 120.0):g}s; "
                               "is the cluster big enough for runtime.client_cpus / client_gpus?")
        ray.get(done)

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  prefix: dict[str, np.ndarray] | None, prefix_hosts: set[int]) -> list[HostResult]:
        payload_ref = ray.put(payload)  # once per round; actors read zero-copy numpy views
        spec = tasks[0].spec
        frozen = [ray.put(self.frozen_state(spec))] if self.frozen_state and spec.frozen else []
        if prefix is not None:
            prefix_ref = ray.put(prefix)
            for h in sorted(prefix_hosts):
                self.actors[h].sync_prefix.remote(prefix_ref)  # actor tasks run in submission order
        rnd = tasks[0].round + 1
        total = sum(len(t.clients) for t in tasks)
        need = math.ceil(self.min_completion * total - 1e-9)
        results: dict[int, HostResult] = {}
        failures = stragglers = restarts = attempt = 0
        todo = list(range(len(tasks)))
        while True:
            refs = {self.actors[tasks[i].host].train.remote(tasks[i], payload_ref, frozen): i for i in todo}
            done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=self.timeout)
            lost: list[int] = []
            for ref in done:
                i = refs[ref]
                try:
                    result, fresh = ray.get(ref)
                except ray.exceptions.RayActorError as err:  # the process died (killed, OOM, node lost)
                    lost.append(i)
                    failures += len(tasks[i].clients)
                    log.warning("round %d: client(s) %s lost (%s)", rnd, list(tasks[i].clients), _first_line(err))
                    continue
                except ray.exceptions.RayTaskError as err:  # the client's own code raised: never retried
                    raise ClientError(f"client(s) {list(tasks[i].clients)} failed in round {rnd}:\n"
                                      f"{_ANSI.sub('', str(err))}") from None
                if fresh and tasks[i].host in self._trained:  # died and came back between rounds
                    restarts += 1
                    log.warning("round %d: client(s) %s had restarted since their last round", rnd,
                                list(tasks[i].clients))
                self._trained.add(tasks[i].host)
                results[i] = result
            late = sorted(refs[r] for r in pending)
            returned = sum(len(tasks[i].clients) for i in results)
            if returned >= need:
                stragglers += sum(len(tasks[i].clients) for i in late)
                if late:
                    log.warning("round %d: dropped straggler(s) %s after runtime.round_timeout=%gs", rnd,
                                [c for i in late for c in tasks[i].clients], self.timeout)
                break
            if late:
                raise TimeoutError(
                    f"round {rnd}: clients {[c for i in late for c in tasks[i].clients]} did not return within "
                    f"runtime.round_timeout={self.timeout:g}s and only {returned} of {total} did "
                    f"(runtime.min_completion={self.min_completion:g} needs {need})")
            if attempt >= self.retries:
                raise ClientError(
                    f"round {rnd}: only {returned} of {total} clients returned after {attempt} retries "
                    f"(runtime.min_completion={self.min_completion:g} needs {need}); client actors keep dying: "
                    "see the Ray dashboard's actor list and the raylet logs")
            attempt += 1
            todo = lost
            for h in sorted({tasks[i].host for i in lost}):
                self._await_restart(h)
            log.warning("round %d: retrying client(s) %s (attempt %d of %d)", rnd,
                        [c for i in lost for c in tasks[i].clients], attempt, self.retries)
        self._faults = {"fault/client_failures": failures + restarts, "fault/stragglers": stragglers,
                        "fault/retries": attempt, "fault/completed": returned}
        ordered = [results[i] for i in sorted(results)]  # fixed order: the order of tasks, not of completion
        if self.metrics is not None:
            self.metrics.on_clients(c.seconds for r in ordered for c in r.clients)
        return ordered

    def _await_restart(self, host: int) -> None:
        """Wait (bounded) until Ray has restarted a dead host actor: calls fail fast while it restarts."""
        deadline = time.monotonic() + max(self.timeout, 120.0)
        while time.monotonic() < deadline:
            try:
                ray.get(self.actors[host].ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return  # gone for good (restarts used up) or still not back: the retry reports it

    def take_faults(self) -> dict[str, int]:
        """The last round's fault counts (for its record), once."""
        faults, self._faults = self._faults, {}
        return faults

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the remote traceback's header


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def start_hosts(plan: RunPlan, namespace: str, cpus: float, gpus: float) -> list[Any]:
    """Create (or get, if already created under these names) the client host actors; does not wait."""
    rt = plan.cfg.runtime
    threads = rt.torch_threads or max(1, math.floor(cpus))
    device = "cuda" if gpus > 0 else "cpu"
    remote = ray.remote(HostActor)
    return [
        remote.options(name=f"fedray-client-{h:03d}", namespace=namespace, num_cpus=cpus, num_gpus=gpus,
                       max_concurrency=1, max_restarts=rt.client_restarts,
                       max_task_retries=0, get_if_exists=True).remote(plan.cfg, plan.info, plan.host_rows(h),
                                                                     device, threads)
        for h in range(len(plan.hosts))
    ]


def run_on_ray(plan: RunPlan, namespace: str, resume: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Start the server actor on this node and stream its per-round records (last: ``__outcome__``).

    ``resume``: an orchestrator state from a checkpoint to continue from.
    """
    # Inside a placement group (a Tune trial) the server must land in the group's bundles, which
    # pinning it to this node would bypass (a deadlock); the client actors land there too.
    in_group = ray.util.get_current_placement_group() is not None
    node = ray.get_runtime_context().get_node_id()
    if plan.cfg.runtime.clients_per_actor == "auto":  # pack for the cluster we actually joined
        res = ray.cluster_resources()
        plan = repack(plan, res.get("CPU", 1.0), res.get("GPU", 0.0))
    cpus, gpus = client_resources(plan.cfg.runtime, len(plan.hosts))  # fails here, before any actor starts
    hosts = start_hosts(plan, namespace, cpus, gpus)  # client imports overlap the server's start-up
    server = ray.remote(ServerActor).options(
        name="fedray-server", namespace=namespace, num_cpus=plan.cfg.runtime.server_cpus, num_gpus=0,
        scheduling_strategy=None if in_group else NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(plan, namespace, cpus, gpus, resume)
    try:
        for ref in server.run.options(num_returns="streaming").remote():
            try:
                yield ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, (ClientError, TimeoutError)):
                    raise err.cause from None  # the server's own message, without Ray's wrapping
                raise
    finally:
        ray.kill(server)
        for actor in hosts:  # normally already killed by the server's fleet.close()
            ray.kill(actor)
