"""The client host as a thin actor shell: a plain ClientHost wrapped with ``ray.remote`` where it is created."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from fedray.client import ClientHost, HostResult, RoundTask
from fedray.data import DataError


class HostActor:
    """A ClientHost in its own process (named ``fedray-client-007`` in the dashboard)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Ray re-runs this constructor when it restarts a dead actor: the shard is decoded again, and the host
        # holds no stage's frozen values, so it loads them from the next train call's reference.
        self.error: DataError | None = None
        try:
            self.host = ClientHost(*args, **kwargs)
        except DataError as err:
            # Raised from a constructor, Ray keeps only the error's text (ActorDiedError); raised from a method
            # it keeps the object, so the driver gets the client, row and column as fields.
            self.error = err
        self.fresh = True  # a new (or restarted) process that has not trained yet

    def ready(self) -> dict[int, int]:
        if self.error is not None:
            raise self.error
        return self.host.sizes()

    def frozen_loads(self) -> int:
        """How often this process loaded a stage's frozen values (tests and benchmarks)."""
        return self.host.frozen_loads

    def train(self, task: RoundTask, payload: dict[str, np.ndarray], frozen: list[Any]) -> tuple[HostResult, bool]:
        """Train; ``frozen`` is ``[stage, ref]`` of the stage's frozen values (or empty), fetched only when this
        process does not hold that stage's values yet. Returns the result and whether the process was fresh."""
        if self.error is not None:
            raise self.error
        if frozen and self.host.frozen_stage != frozen[0]:
            self.host.hold_frozen(ray.get(frozen[1]))
        was_fresh, self.fresh = self.fresh, False
        return self.host.train(task, payload), was_fresh
