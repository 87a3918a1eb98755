"""FedAvg as small pure functions over numpy state dicts.

Clients contribute ``n_k * w_k`` accumulated in float64, in a fixed order (client id within a
host, host index across hosts), so results never depend on completion order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PartialSum:
    """Σ n_k·w_k and Σ n_k over some clients."""

    weight: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, num_samples: int, state: dict[str, np.ndarray]) -> None:
        """Add one client's tensors with weight ``num_samples``."""
        for name, value in state.items():
            term = np.asarray(value, dtype=np.float64) * num_samples
            if name in self.sums:
                self.sums[name] += term
            else:
                self.sums[name] = term
        self.weight += num_samples


def combine(partials: list[PartialSum]) -> PartialSum:
    """Sum partial sums in the given (fixed) order."""
    total = PartialSum()
    for part in partials:
        total.weight += part.weight
        for name, value in part.sums.items():
            total.sums[name] = total.sums[name] + value if name in total.sums else value.copy()
    return total


def weighted_mean(total: PartialSum, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Σ n_k·w_k / Σ n_k cast back to each tensor's dtype (integer buffers are rounded)."""
    if total.weight <= 0:
        raise ValueError("cannot average: the cohort holds no samples")
    out = {}
    for name, ref in like.items():
        mean = total.sums[name] / total.weight
        out[name] = np.asarray(np.rint(mean) if np.issubdtype(ref.dtype, np.integer) else mean, dtype=ref.dtype)
    return out


def nbytes(state: dict[str, np.ndarray]) -> int:
    """Exact size in bytes of a set of tensors."""
    return int(sum(v.nbytes for v in state.values()))
