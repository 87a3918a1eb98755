"""Thin actor shells: plain fedray objects wrapped with ``ray.remote`` where they are created."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import ray
import torch

from fedray.client import ClientHost, HostResult, RoundTask, to_numpy


class HostActor:
    """A ClientHost in its own process (named ``fedray-client-007`` in the dashboard)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Ray re-runs this constructor when it restarts a dead actor: the shard is decoded again.
        self.host = ClientHost(*args, **kwargs)
        self.fresh = True  # a new (or restarted) process has only the seed's weights for frozen groups

    def ready(self) -> dict[int, int]:
        return self.host.sizes()

    def sync_prefix(self, state: dict[str, np.ndarray]) -> None:
        self.host.sync_prefix(state)

    def train(self, task: RoundTask, payload: dict[str, np.ndarray], frozen: list[Any]) -> tuple[HostResult, bool]:
        """Train; a fresh process first loads the stage's frozen groups (``frozen``: [ref] or [])."""
        was_fresh, self.fresh = self.fresh, False
        if was_fresh and frozen:
            self.host.sync_prefix(ray.get(frozen[0]))
        return self.host.train(task, payload), was_fresh


class ServerActor:
    """Runs the orchestrator next to its fleet; streams one record per round to the caller."""

    def __init__(self, plan: Any, namespace: str, cpus: float, gpus: float,
                 resume: dict[str, Any] | None = None) -> None:
        from fedray.backend.fleet import RayFleet  # imported here: fleet.py imports this module
        from fedray.plan import make_orchestrator

        torch.set_num_threads(1)
        from fedray.backend.metrics import RunMetrics

        self.every = plan.cfg.runtime.checkpoint_every
        self.metrics = RunMetrics(plan.cfg.name, plan.cfg.train.method, run_id=namespace)
        self.fleet = RayFleet(plan, namespace, cpus, gpus, self.metrics)
        self.orchestrator = make_orchestrator(plan, self.fleet)
        model = self.orchestrator.model  # restarted client actors re-load frozen groups from here
        self.fleet.frozen_state = lambda spec: to_numpy(model.state(spec.frozen))
        if resume is not None:
            self.orchestrator.import_state(resume)

    def run(self) -> Generator[dict[str, Any], None, None]:
        from fedray.server.checkpoint import stream

        try:
            for item in stream(self.orchestrator, self.every):
                if "round" in item:  # a round's record, not a checkpoint or the outcome
                    item.update(self.fleet.take_faults())
                    self.metrics.on_round(item)
                yield item
        finally:
            self.fleet.close()
