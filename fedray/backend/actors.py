"""Thin actor shells: plain fedray objects wrapped with ``ray.remote`` where they are created."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from fedray.client import ClientHost, HostResult, RoundTask


class HostActor:
    """A ClientHost in its own process (named ``fedray-client-007`` in the dashboard)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.host = ClientHost(*args, **kwargs)

    def ready(self) -> dict[int, int]:
        return self.host.sizes()

    def sync_prefix(self, state: dict[str, np.ndarray]) -> None:
        self.host.sync_prefix(state)

    def train(self, task: RoundTask, payload: dict[str, np.ndarray]) -> HostResult:
        return self.host.train(task, payload)


class ServerActor:
    """Runs the orchestrator next to its fleet; streams one record per round to the caller."""

    def __init__(self, plan: Any, namespace: str, cpus: float, gpus: float) -> None:
        from fedray.backend.fleet import RayFleet  # imported here: fleet.py imports this module
        from fedray.plan import make_orchestrator

        torch.set_num_threads(1)
        self.orchestrator = make_orchestrator(plan, RayFleet(plan, namespace, cpus, gpus))

    def run(self) -> Generator[dict[str, Any], None, None]:
        gen = self.orchestrator.run()
        try:
            while True:
                yield next(gen)
        except StopIteration as stop:
            yield {"__outcome__": stop.value}
        finally:
            self.orchestrator.fleet.close()
