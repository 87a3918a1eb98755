"""Aggregation strategies: how the server turns the cohort's updates into the next global tensors. numpy only.

An :class:`Aggregator` is a pure function of the cohort's float64 partial sum, the current global values of the
exchanged tensors and its own state (tensors by name, checkpointed with the server's state). FedAvg is the
sample-weighted mean. The server optimisers follow Reddi et al. 2021 ("Adaptive Federated Optimization", Alg. 2):
with the pseudo-gradient Δ = mean − x of each float parameter x,

* FedAvgM: m ← momentum·m + Δ;                                  x ← x + server_lr·m
* FedAdam: m ← β1·m + (1−β1)·Δ;  v ← β2·v + (1−β2)·Δ²;          x ← x + server_lr·m / (√v + τ)
* FedYogi: as FedAdam with v ← v − (1−β2)·Δ²·sign(v − Δ²).

Moments are keyed by tensor name (``m/<name>``, ``v/<name>``) and start at zero: a tensor that becomes exchanged
at a stage boundary starts fresh, and the moments of tensors no longer exchanged are dropped. Buffers (BatchNorm
statistics) and integer counters are averaged as FedAvg does. FedProx aggregates as FedAvg; its proximal term
is applied in local training (``fedray.training.local_train(proximal=mu)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fedray.config import StrategyConfig
from fedray.training.aggregate import PartialSum, weighted_mean

Tensors = dict[str, np.ndarray]


class Aggregator(Protocol):
    """Combines a round's updates into new global values of the exchanged tensors."""

    def aggregate(self, total: PartialSum, current: Tensors, state: Tensors) -> tuple[Tensors, Tensors]:
        """(new values of the tensors in ``current``, the aggregator's new state); pure: inputs are not changed."""
        ...


@dataclass(frozen=True)
class FedAvg:
    """Σ n_k·w_k / Σ n_k, cast back to each tensor's dtype: the float64 arithmetic of the original engine."""

    def aggregate(self, total: PartialSum, current: Tensors, state: Tensors) -> tuple[Tensors, Tensors]:
        return weighted_mean(total, current), {}


@dataclass(frozen=True)
class ServerOptimizer:
    """FedAvgM, FedAdam or FedYogi on the float parameters in ``params``; FedAvg on everything else."""

    kind: str  # fedavgm | fedadam | fedyogi
    params: frozenset[str]  # names of the model's parameters (not buffers)
    server_lr: float
    momentum: float = 0.0  # fedavgm
    beta1: float = 0.9  # fedadam, fedyogi
    beta2: float = 0.99
    tau: float = 1e-3

    def aggregate(self, total: PartialSum, current: Tensors, state: Tensors) -> tuple[Tensors, Tensors]:
        out = weighted_mean(total, current)
        moments: Tensors = {}
        for name, x in current.items():
            if name not in self.params or not np.issubdtype(x.dtype, np.floating):
                continue
            x64 = x.astype(np.float64)
            delta = total.sums[name] / total.weight - x64  # pseudo-gradient, float64
            m = state.get(f"m/{name}", np.zeros_like(x)).astype(np.float64)
            if self.kind == "fedavgm":
                m = self.momentum * m + delta
                step = m
            else:
                v = state.get(f"v/{name}", np.zeros_like(x)).astype(np.float64)
                m = self.beta1 * m + (1 - self.beta1) * delta
                sq = delta * delta
                v = self.beta2 * v + (1 - self.beta2) * sq if self.kind == "fedadam" else \
                    v - (1 - self.beta2) * sq * np.sign(v - sq)
                moments[f"v/{name}"] = v.astype(x.dtype)
                step = m / (np.sqrt(v) + self.tau)
            moments[f"m/{name}"] = m.astype(x.dtype)
            out[name] = (x64 + self.server_lr * step).astype(x.dtype)
        return out, moments


def make_aggregator(strategy: StrategyConfig, params: frozenset[str]) -> Aggregator:
    """The aggregator of ``train.strategy``; ``params`` names the model's parameters (the rest are buffers)."""
    if strategy.name in ("fedavg", "fedprox"):
        return FedAvg()
    if strategy.name == "fedavgm":
        return ServerOptimizer("fedavgm", params, strategy.server_lr, momentum=strategy.momentum)
    if strategy.name in ("fedadam", "fedyogi"):
        return ServerOptimizer(strategy.name, params, strategy.server_lr, beta1=strategy.beta1, beta2=strategy.beta2,
                               tau=strategy.tau)
    raise ValueError(f"no aggregator for strategy {strategy.name!r}")
