"""Partitioners: split training row positions over clients. Pure numpy, seeded."""

from __future__ import annotations

import numpy as np


def iid(num_rows: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """A seeded random permutation cut into ``num_clients`` near-equal contiguous shards."""
    if num_clients > num_rows:
        raise ValueError(f"data.num_clients: {num_clients} clients but only {num_rows} training rows")
    perm = np.random.default_rng(seed).permutation(num_rows)
    return [np.sort(part) for part in np.array_split(perm, num_clients)]
