"""The server's state as one value: everything a round reads and writes, and what a checkpoint holds.

:class:`ServerState` is frozen; :func:`fedray.server.rounds.apply_round` returns a new one. Its arrays are never
changed in place (a new round replaces the tensors it aggregated), so states can share unchanged arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fedray.resources.ledger import Ledger

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class ServerState:
    """The global model and the run's position after ``rounds_done`` rounds."""

    tensors: Tensors  # the global model: every tensor by name (state-dict order)
    rounds_done: int  # rounds finished: the position a resumed run continues from
    rng: dict[str, Any]  # the cohort sampler's bit-generator state (numpy PCG64), after the last draw
    synced: dict[int, int]  # client -> stage whose frozen values it holds (see fedray.schedules.stale_groups)
    aggregator: Tensors  # the strategy's state by name (server-optimiser moments; empty for FedAvg)
    ledger: Ledger  # what clients spent so far, per stage and in total
    sim_clock_s: float = 0.0  # with a device fleet: the simulated seconds since the run began


def initial_state(tensors: Tensors, seed: int, clients: int) -> ServerState:
    """Round 0: the seed's model, a sampler seeded with ``seed``, every client holding the initial values."""
    return ServerState(dict(tensors), 0, np.random.default_rng(seed).bit_generator.state,
                       {c: 0 for c in range(clients)}, {}, Ledger())


def to_dict(state: ServerState) -> dict[str, Any]:
    """Tensors and plain Python values only, so a checkpoint loads with ``torch.load(weights_only=True)``."""
    return {"tensors": _torch(state.tensors), "rounds_done": state.rounds_done, "rng": state.rng,
            "synced": dict(state.synced), "aggregator": _torch(state.aggregator), "ledger": state.ledger.to_dict(),
            "sim_clock_s": state.sim_clock_s}


def from_dict(data: dict[str, Any]) -> ServerState:
    """The inverse of :func:`to_dict`."""
    return ServerState({n: t.numpy() for n, t in data["tensors"].items()}, int(data["rounds_done"]), data["rng"],
                       {int(c): int(s) for c, s in data["synced"].items()},
                       {n: t.numpy() for n, t in data["aggregator"].items()}, Ledger.from_dict(data["ledger"]),
                       float(data.get("sim_clock_s", 0.0)))


def _torch(tensors: Tensors) -> dict[str, torch.Tensor]:
    # Shared memory where possible; object-store arrays are read-only, and torch wants writable ones.
    return {n: torch.from_numpy(v if v.flags.writeable else v.copy()) for n, v in tensors.items()}
