"""Gradient-flow instruments: per layer group, the L2 norm of a change of the weights.

Does progressive training give earlier layers better gradients than end-to-end? The aggregated update's norm
per group (server) and the mean norm of the clients' own local updates per group (hosts) answer it from tensors
already in hand; a local update is the sum of the round's learning-rate-scaled steps, so its norm tracks the
gradient that reached the group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np

UPDATE = "grad/update_norm/"  # + group: the aggregated update's norm (the global model's change this round)
CLIENT_UPDATE = "grad/client_update_norm/"  # + group: the mean norm of the returned clients' local updates


def group_norms(new: Mapping[str, np.ndarray], old: Mapping[str, np.ndarray],
                group_of: Callable[[str], str | None], params: Collection[str]) -> dict[str, float]:
    """Per layer group, ||new - old|| over the group's parameters among ``params``: buffers are left out (BatchNorm
    running statistics move with the data, not with gradients, and would swamp a convolutional tower's norm)."""
    squares: dict[str, float] = {}
    for name, value in new.items():
        group = group_of(name)
        if group is None or name not in params:
            continue
        # float32: one temporary the size of the tensor (this runs per client and round), not two float64 copies
        diff = np.subtract(value, old[name], dtype=np.float32).ravel()
        squares[group] = squares.get(group, 0.0) + float(np.dot(diff, diff))
    return {g: math.sqrt(s) for g, s in squares.items()}


def mean_norms(per_client: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean over clients of each group's norm (clients that returned, each counted once)."""
    groups = sorted({g for norms in per_client for g in norms})
    return {g: sum(n[g] for n in per_client if g in n) / sum(g in n for n in per_client) for g in groups}


def record_keys(update: Mapping[str, float], client: Mapping[str, float]) -> dict[str, float]:
    """The metrics-row keys of one round's instruments."""
    return {**{UPDATE + g: v for g, v in update.items()}, **{CLIENT_UPDATE + g: v for g, v in client.items()}}
