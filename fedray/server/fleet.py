"""The Fleet protocol: how the server reaches client hosts. In-process here; Ray in fedray.backend.

A fleet is transport only: it runs a round's tasks from the global tensors it is given and makes sure every
host holds the stage's frozen values before it trains. What a client is charged for receiving them is
algorithm (``RoundPlan.deliveries``), not how the fleet feeds its hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fedray.client import ClientHost, FrozenValues, HostResult, RoundTask


@dataclass
class RoundResults:
    """What came back from a round: returned hosts' results (in task order) and the clients that did not return."""

    results: list[HostResult]
    lost: tuple[int, ...] = ()  # clients whose host died and did not come back in time
    dropped: tuple[int, ...] = ()  # stragglers past runtime.round_timeout, dropped by min_completion < 1
    faults: dict[str, int] = field(default_factory=dict)  # fault/* counts for the round's record


class Fleet(Protocol):
    """Runs one round's tasks on client hosts."""

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  frozen: FrozenValues | None) -> RoundResults:
        """Train ``tasks`` from the global tensors ``payload``; each host first holds ``frozen`` (the stage's
        frozen values, identical for every round of a stage)."""
        ...

    def close(self) -> None:
        """Release the hosts."""
        ...


class InProcessFleet:
    """All hosts in this process, run one after another: for unit tests, debugging, and ``backend: local``."""

    def __init__(self, hosts: list[ClientHost]) -> None:
        self.hosts = hosts

    def run_round(self, tasks: list[RoundTask], payload: dict[str, np.ndarray],
                  frozen: FrozenValues | None) -> RoundResults:
        return RoundResults([self.hosts[t.host].train(t, payload, frozen) for t in tasks])

    def close(self) -> None:
        self.hosts = []


class ClientError(RuntimeError):
    """A round cannot complete because of its clients: a client's code raised (the message names the client
    ids and carries the traceback), or actors kept dying past the retries."""
