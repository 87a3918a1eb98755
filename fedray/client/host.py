"""ClientHost: holds some clients' shards and one model copy (with its frozen prefix). No Ray.

A host trains the clients it is given in a round one after another, each starting from the
global tensors, and returns one weighted partial sum. With one client per host (the default)
this is the paper's client; the Ray backend wraps a host in a thin actor.

Frozen groups change only between stages, so a host loads their values (:class:`FrozenValues`)
once per stage, whenever it does not hold that stage's values yet (a new or restarted host
included), and drops only the cached activations built from groups whose values changed.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from fedray.client.prefix_cache import PrefixCache, cache_enabled, rows
from fedray.config import ExperimentConfig
from fedray.data import DatasetInfo
from fedray.data.dataset import load_client_shards
from fedray.model import build_model
from fedray.resources.meter import StepMeter, cuda_peak
from fedray.schedules import StageSpec
from fedray.training import PartialSum, configure_trainable, local_train
from fedray.training.finite import NonFiniteError, check_tensors
from fedray.training.gradflow import group_norms


@dataclass(frozen=True)
class RoundTask:
    """One host's share of a round: which of its clients train, under which stage."""

    host: int
    round: int  # 0-based global round index
    spec: StageSpec
    clients: tuple[int, ...]  # client ids, ascending: the fixed summation order


@dataclass(frozen=True)
class FrozenValues:
    """The values of every frozen group of a stage, by tensor name (constant for the whole stage)."""

    stage: int  # 0-based stage index: the key a host compares with what it holds
    tensors: dict[str, np.ndarray]


@dataclass(frozen=True)
class ClientStats:
    """One client's local-training figures for one round."""

    client: int
    num_samples: int
    steps: int
    loss: float
    seconds: float
    flops: int = 0  # training FLOPs of this round (measured step x steps)
    peak_memory_bytes: int = 0  # CUDA: max_memory_allocated; CPU: the memory model (fedray.resources.meter)
    update_norms: dict[str, float] = field(default_factory=dict)  # per group: ||local update|| (gradient flow)


@dataclass
class HostResult:
    """A host's weighted partial sum plus per-client stats."""

    host: int
    partial: PartialSum
    clients: list[ClientStats] = field(default_factory=list)


def client_seed(seed: int, round_idx: int, client: int) -> int:
    """Independent, reproducible seed for one client's local training in one round."""
    return int(np.random.SeedSequence([seed, round_idx, client]).generate_state(1)[0])


def load_state(model: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy numpy tensors into the model in place (object-store arrays are read-only views)."""
    current = model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # non-writable numpy: we only read it
        for name, value in state.items():
            current[name].copy_(torch.from_numpy(value))


def to_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {n: t.detach().cpu().numpy() for n, t in state.items()}


class ClientHost:
    """One or more clients sharing a model copy; decodes its clients' rows once, at start."""

    def __init__(self, cfg: ExperimentConfig, info: DatasetInfo, rows: dict[int, np.ndarray], device: str = "cpu",
                 threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.cfg = cfg
        self.device = torch.device(device)
        max_length = max((t.max_length for m, t in cfg.model.towers.items() if m == "text"), default=32)  # captions
        self.shards = load_client_shards(info, rows, max_length, cfg.data.caption)  # a bad row names its client
        self.model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed).to(self.device)
        self._stage: int | None = None
        self._params = frozenset(n for n, _ in self.model.named_parameters())  # for the gradient-flow norms
        self.frozen_stage: int | None = None  # the stage whose frozen values this host holds
        self.frozen_loads = 0  # how often it loaded them (once per stage; again after a restart)
        self.cache = PrefixCache(cfg.runtime.cache_budget_mb) if cache_enabled(cfg) else None
        self._meters: dict[int, StepMeter] = {}  # per stage: the first step is measured, then cached
        strategy = cfg.train.strategy
        self.proximal = strategy.mu if strategy.name == "fedprox" else 0.0  # FedProx's mu, else no term

    def sizes(self) -> dict[int, int]:
        """Samples per client."""
        return {c: len(s) for c, s in self.shards.items()}

    def hold_frozen(self, frozen: FrozenValues) -> None:
        """Load a stage's frozen values unless already held; cached activations of changed groups are dropped."""
        if self.frozen_stage == frozen.stage:
            return
        current = self.model.state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # object-store arrays are read-only: we only read them
            changed = {self.model.group_of(n) for n, v in frozen.tensors.items()
                       if not torch.equal(current[n].cpu(), torch.from_numpy(v))}
        load_state(self.model, frozen.tensors)
        if self.cache is not None and changed:  # activations computed with the old values are stale
            self.cache.invalidate(changed)
        self.frozen_stage = frozen.stage
        self.frozen_loads += 1

    def _enter_stage(self, spec: StageSpec) -> None:
        self.model.set_depths(spec.depths)
        configure_trainable(self.model, spec)
        self._stage = spec.index

    def train(self, task: RoundTask, payload: dict[str, np.ndarray], frozen: FrozenValues | None = None) -> HostResult:
        """Train ``task.clients`` in order from the global tensors ``payload`` (and the stage's ``frozen`` values,
        loaded if not held yet); sum their updates."""
        spec = task.spec
        if frozen is not None:
            self.hold_frozen(frozen)
        if self._stage != spec.index:
            self._enter_stage(spec)
        result = HostResult(task.host, PartialSum())
        for client in task.clients:
            start = time.perf_counter()
            load_state(self.model, payload)
            shard = self.shards[client]
            entry = self.cache.prepare(client, self.model, shard, spec) if self.cache is not None else None
            meter = self._meters.setdefault(spec.index, StepMeter())
            try:
                with cuda_peak(self.device) as cuda:
                    stats = local_train(self.model, shard, spec, self.cfg.train,
                                        client_seed(self.cfg.train.seed, task.round, client), self.cfg.data.augment,
                                        cached=partial(rows, entry) if entry is not None else None,
                                        measure=meter.step if meter.cost is None else None, proximal=self.proximal)
            except NonFiniteError as err:  # the loss check knows the step; the round and client are known here
                raise err.located(round=task.round + 1, client=client) from None
            update = to_numpy(self.model.state(spec.exchanged))
            # a NaN weight with a finite loss (e.g. an overflowing step) must never reach the partial sum
            check_tensors(update, "update", self.model.group_of, round=task.round + 1, client=client)
            result.partial.add(stats.num_samples, update)
            cost = meter.cost if stats.steps else None
            result.clients.append(ClientStats(client, stats.num_samples, stats.steps, stats.loss,
                                              time.perf_counter() - start, cost.flops * stats.steps if cost else 0,
                                              (cuda[0] or cost.memory_bytes) if cost else 0,
                                              group_norms(update, payload, self.model.group_of, self._params)))
        return result

