"""The Fleet protocol: how the server reaches client hosts. In-process here; Ray in fedray.backend."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fedray.client import ClientHost, HostResult, RoundTask


class Fleet(Protocol):
    """Runs one round's tasks on client hosts and returns results in task order."""

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  prefix: dict[str, np.ndarray] | None, prefix_hosts: set[int]) -> list[HostResult]:
        """Send ``prefix`` to ``prefix_hosts`` first, then run ``tasks`` from the global tensors ``payload``."""
        ...

    def close(self) -> None:
        """Release the hosts."""
        ...


class InProcessFleet:
    """All hosts in this process, run one after another: for unit tests, debugging, and ``backend: local``."""

    def __init__(self, hosts: list[ClientHost]) -> None:
        self.hosts = hosts

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  prefix: dict[str, np.ndarray] | None, prefix_hosts: set[int]) -> list[HostResult]:
        for h in sorted(prefix_hosts):
            assert prefix is not None
            self.hosts[h].sync_prefix(prefix)
        return [self.hosts[t.host].train(t, payload) for t in tasks]

    def close(self) -> None:
        self.hosts = []


class ClientError(RuntimeError):
    """A round cannot complete because of its clients: a client's code raised (the message names the client
    ids and carries the traceback), or actors kept dying past the retries."""
