"""RayFleet: client hosts as Ray actors; one ``ray.put`` per round, bounded gathers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.backend.actors import HostActor, ServerActor
from fedray.backend.session import client_resources
from fedray.client import HostResult, RoundTask
from fedray.plan import RunPlan, repack


class RayFleet:
    """One actor per client host, created once per run and kept for every round."""

    def __init__(self, plan: RunPlan, namespace: str, cpus: float, gpus: float) -> None:
        rt = plan.cfg.runtime
        self.actors = start_hosts(plan, namespace, cpus, gpus)  # the driver may have started them already
        self.timeout = rt.round_timeout
        ready = [a.ready.remote() for a in self.actors]
        done, pending = ray.wait(ready, num_returns=len(ready), timeout=max(self.timeout, 120.0))
        if pending:
            raise TimeoutError(f"{len(pending)} client actors did not start within {max(self.timeout, 120.0):g}s; "
                               "is the cluster big enough for runtime.client_cpus / client_gpus?")
        ray.get(done)

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  prefix: dict[str, np.ndarray] | None, prefix_hosts: set[int]) -> list[HostResult]:
        payload_ref = ray.put(payload)  # once per round; actors read zero-copy numpy views
        if prefix is not None:
            prefix_ref = ray.put(prefix)
            for h in sorted(prefix_hosts):
                self.actors[h].sync_prefix.remote(prefix_ref)  # actor tasks run in submission order
        refs = [self.actors[t.host].train.remote(t, payload_ref) for t in tasks]
        done, pending = ray.wait(refs, num_returns=len(refs), timeout=self.timeout)
        if pending:
            late = [t.clients for t, r in zip(tasks, refs) if r in pending]
            raise TimeoutError(f"round {tasks[0].round + 1}: clients {late} did not return within "
                               f"runtime.round_timeout={self.timeout:g}s")
        by_ref = dict(zip(refs, tasks))
        results: list[HostResult] = []
        for ref in refs:  # fixed order: the order of tasks, not of completion
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayTaskError as err:
                raise RuntimeError(f"client(s) {list(by_ref[ref].clients)} failed in round "
                                   f"{by_ref[ref].round + 1}:\n{err}") from None
        return results

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def start_hosts(plan: RunPlan, namespace: str, cpus: float, gpus: float) -> list[Any]:
    """Create (or get, if already created under these names) the client host actors; does not wait."""
    rt = plan.cfg.runtime
    threads = rt.torch_threads or max(1, math.floor(cpus))
    device = "cuda" if gpus > 0 else "cpu"
    remote = ray.remote(HostActor)
    return [
        remote.options(name=f"fedray-client-{h:03d}", namespace=namespace, num_cpus=cpus, num_gpus=gpus,
                       max_concurrency=1, get_if_exists=True).remote(plan.cfg, plan.info, plan.host_rows(h),
                                                                     device, threads)
        for h in range(len(plan.hosts))
    ]


def run_on_ray(plan: RunPlan, namespace: str) -> Iterator[dict[str, Any]]:
    """Start the server actor on this node and stream its per-round records (last: ``__outcome__``)."""
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
    ).remote(plan, namespace, cpus, gpus)
    try:
        for ref in server.run.options(num_returns="streaming").remote():
            yield ray.get(ref)
    finally:
        ray.kill(server)
        for actor in hosts:  # normally already killed by the server's fleet.close()
            ray.kill(actor)
