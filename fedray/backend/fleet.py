"""RayFleet: client hosts as Ray actors; the payload put once per round, the frozen values once per stage,
bounded gathers."""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import numpy as np
import ray

from fedray.backend.actors import HostActor
from fedray.backend.errors import reraise_user_error
from fedray.client import FrozenValues, HostResult, RoundTask
from fedray.plan import RunPlan
from fedray.server.fleet import ClientError, RoundResults

log = logging.getLogger("fedray")


class RayFleet:
    """One actor per client host, created once per run and kept for every round (started on creation; ``wait_ready``
    waits for them).

    Faults: an actor that dies is restarted by Ray (``runtime.client_restarts``; its constructor decodes
    the shard again). The round completes once ``runtime.min_completion`` of the cohort returned, retrying
    lost clients' tasks while that is not reached; stragglers past ``round_timeout`` are dropped the same
    way. Counts go into the round's record (``fault/*``). A client whose code raises stops the run.

    A stage's frozen values go into the object store once (``frozen_puts`` counts it) and every train call
    carries the reference; a host fetches and loads them only when it does not hold that stage's values yet.
    """

    def __init__(self, plan: RunPlan, namespace: str, cpus: float, gpus: float, metrics: Any = None) -> None:
        rt = plan.cfg.runtime
        self.actors = start_hosts(plan, namespace, cpus, gpus)
        self.timeout = rt.round_timeout
        self.min_completion = rt.min_completion
        self.retries = rt.client_restarts
        self.metrics = metrics
        self._trained: set[int] = set()  # hosts that trained at least once (a fresh one then restarted)
        self._frozen: list[Any] = []  # [stage, ref] of the frozen values in the object store
        self.frozen_puts = 0

    def wait_ready(self) -> RayFleet:
        """Wait until every host has decoded its shard and built its model. The actors start in ``__init__``, so
        the caller can build its own parts while they start (the server: its model and held-out rows)."""
        ready = [a.ready.remote() for a in self.actors]
        done, pending = ray.wait(ready, num_returns=len(ready), timeout=max(self.timeout, 120.0))
        if pending:
            raise TimeoutError(f"{len(pending)} client actors did not start within {max(self.timeout, 120.0):g}s; "
                               "is the cluster big enough for runtime.client_cpus / client_gpus?")
        for host, ref in enumerate(ready):
            self._started(host, ref)
        return self

    def _started(self, host: int, ready: Any) -> None:
        """Wait for host ``host`` to be ready. One that dies while starting (killed for memory, its node lost) is
        restarted by Ray like one that dies later: ask again, up to ``runtime.client_restarts`` times."""
        for attempt in range(self.retries + 1):
            try:
                ray.get(ready)
                return
            except ray.exceptions.RayTaskError as err:  # a bad row in its shard: one line naming client, row, column
                reraise_user_error(err)
                raise
            except ray.exceptions.RayActorError as err:
                if attempt == self.retries:
                    raise
                log.warning("client host %d died while starting (%s); waiting for Ray to restart it", host,
                            _first_line(err))
                time.sleep(0.5)
                ready = self.actors[host].ready.remote()

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  frozen: FrozenValues | None) -> RoundResults:
        payload_ref = ray.put(payload)  # once per round; actors read zero-copy numpy views
        if frozen is None:
            self._frozen = []
        elif not self._frozen or self._frozen[0] != frozen.stage:  # once per stage: its values never change in it
            self._frozen = [frozen.stage, ray.put(frozen)]
            self.frozen_puts += 1
        rnd = tasks[0].round + 1
        total = sum(len(t.clients) for t in tasks)
        need = math.ceil(self.min_completion * total - 1e-9)
        results: dict[int, HostResult] = {}
        failures = stragglers = restarts = attempt = 0
        lost_hosts: set[int] = set()  # died during this round: counted once, not again when the retry finds it fresh
        todo = list(range(len(tasks)))
        while True:
            refs = {self.actors[tasks[i].host].train.remote(tasks[i], payload_ref, self._frozen): i for i in todo}
            done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=self.timeout)
            lost: list[int] = []
            for ref in done:
                i = refs[ref]
                try:
                    result, fresh = ray.get(ref)
                except ray.exceptions.RayActorError as err:  # the process died (killed, OOM, node lost)
                    lost.append(i)
                    lost_hosts.add(tasks[i].host)
                    failures += len(tasks[i].clients)
                    log.warning("round %d: client(s) %s lost (%s)", rnd, list(tasks[i].clients), _first_line(err))
                    continue
                except ray.exceptions.RayTaskError as err:  # the client's own code raised: never retried
                    reraise_user_error(err)  # bad data or a non-finite loss/update: fedray's own one-line error
                    raise ClientError(f"client(s) {list(tasks[i].clients)} failed in round {rnd}:\n"
                                      f"{_ANSI.sub('', str(err))}") from None
                if fresh and tasks[i].host in self._trained and tasks[i].host not in lost_hosts:  # between rounds
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
        ordered = [results[i] for i in sorted(results)]  # fixed order: the order of tasks, not of completion
        if self.metrics is not None:
            self.metrics.on_clients(c.seconds for r in ordered for c in r.clients)
        return RoundResults(ordered, lost=tuple(c for i in lost for c in tasks[i].clients),
                            dropped=tuple(c for i in late for c in tasks[i].clients),
                            faults={"fault/client_failures": failures + restarts, "fault/stragglers": stragglers,
                                    "fault/retries": attempt, "fault/completed": returned})

    def _await_restart(self, host: int) -> None:
        """Wait (bounded) until Ray has restarted a dead host actor: calls fail fast while it restarts."""
        deadline = time.monotonic() + max(self.timeout, 120.0)
        while time.monotonic() < deadline:
            try:
                ray.get(self.actors[host].ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.5)
            except ray.exceptions.RayTaskError as err:  # restarted, but its shard no longer decodes
                reraise_user_error(err)
                raise
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return  # gone for good (restarts used up) or still not back: the retry reports it

    def close(self) -> None:
        end_actors(self.actors)
        self.actors = []


def end_actors(actors: list[Any], timeout_s: float = 30.0) -> None:
    """End actors as they would end themselves: Ray's graceful termination runs after their queued calls and exits
    the process cleanly, where ``ray.kill`` stops a worker mid-call (torch's threads then abort on a corrupt mutex,
    a crash dump in the session's logs). An actor still there after ``timeout_s`` (a straggler's round) is killed."""
    ending = {actor.__ray_terminate__.remote(): actor for actor in actors}
    _, late = ray.wait(list(ending), num_returns=len(ending), timeout=timeout_s)
    for ref in late:
        ray.kill(ending[ref])


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
