"""A round as two pure functions: :func:`plan_round` (state -> what to do) and :func:`apply_round` (state + what
came back -> the next state and the round's record). No Ray and no torch arithmetic here; the stale-prefix rule they
use (``fedray.schedules.stale_groups``) is the one ``fedray resources`` counts with.

Planning: where the state stands in the schedule, the cohort (a separate, replaceable step: :class:`CohortSelector`),
the per-host tasks, and per client the frozen groups it must receive first (``schedules.stale_groups``).
Applying: aggregation by the run's :class:`~fedray.training.Aggregator` over the hosts' partial sums in host order,
and the ledger and sync state charged only for clients that returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedray.client import RoundTask
from fedray.devices.clock import client_fields, round_record
from fedray.resources.ledger import Costs
from fedray.schedules import StageSpec, stale_groups
from fedray.server.fleet import RoundResults
from fedray.server.state import ServerState, Tensors
from fedray.training import Aggregator, combine
from fedray.training.gradflow import group_norms, mean_norms, record_keys


@dataclass(frozen=True)
class Selection:
    """A round's cohort and the sampler state after drawing it."""

    clients: tuple[int, ...]  # ascending client ids
    rng: dict[str, Any]


class CohortSelector(Protocol):
    """Chooses a round's cohort from the state (its RNG, its clients) for a stage."""

    def __call__(self, state: ServerState, stage: StageSpec, round_index: int) -> Selection: ...


@dataclass(frozen=True)
class UniformCohort:
    """``size`` of ``num_clients`` clients, uniformly without replacement (one ``Generator.choice`` per round)."""

    num_clients: int
    size: int

    def __call__(self, state: ServerState, stage: StageSpec, round_index: int) -> Selection:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state.rng
        clients = tuple(sorted(int(c) for c in rng.choice(self.num_clients, self.size, replace=False)))
        return Selection(clients, rng.bit_generator.state)


def cohort_size(num_clients: int, participation: float) -> int:
    return max(1, min(num_clients, round(participation * num_clients)))


@dataclass(frozen=True)
class RoundContext:
    """What planning and applying a round read besides the state; fixed for a run."""

    schedule: tuple[StageSpec, ...]
    host_of: dict[int, int]  # client id -> host index
    group_of: dict[str, str]  # tensor name -> layer group, in state-dict order
    group_bytes: dict[str, int]  # bytes per layer group (shapes never change during a run)
    aggregator: Aggregator
    select: CohortSelector
    method: str
    eval_every: int
    devices: Any = None  # fedray.devices.DeviceSim with a fleet: who can and does train, on a simulated clock
    cohort_target: int = 0  # k: the updates a round wants (the cohort size without a fleet)
    params: frozenset[str] = frozenset()  # parameter names (not buffers): what the gradient-flow norms cover

    @property
    def total_rounds(self) -> int:
        return sum(s.rounds for s in self.schedule)

    def names(self, groups: frozenset[str]) -> list[str]:
        """Tensor names of ``groups``, in state-dict order."""
        return [n for n, g in self.group_of.items() if g in groups]

    def bytes_of(self, groups: frozenset[str]) -> int:
        return sum(self.group_bytes.get(g, 0) for g in groups)

    def locate(self, rounds_done: int) -> tuple[StageSpec, int] | None:
        """The stage of the next round and its 0-based index within the stage; None when the run is over."""
        left = rounds_done
        for spec in self.schedule:
            if left < spec.rounds:
                return spec, left
            left -= spec.rounds
        return None

    def evaluates(self, round_number: int) -> bool:
        """Whether the global model is evaluated after round ``round_number`` (1-based)."""
        return round_number % self.eval_every == 0 or round_number == self.total_rounds


@dataclass(frozen=True)
class RoundPlan:
    """What one round does, decided from the state before anything runs."""

    round: int  # 0-based global round index
    stage: StageSpec
    stage_round: int  # 0-based within the stage
    cohort: tuple[int, ...]
    tasks: tuple[RoundTask, ...]  # one per host with cohort clients, in host order
    deliveries: dict[int, frozenset[str]]  # client -> stale frozen groups it receives before training
    rng: dict[str, Any]  # the sampler state after this round's draw
    sim: Any = None  # with a fleet: (devices.Cohort, devices.RoundTiming); ``cohort`` is then the kept clients


def plan_round(state: ServerState, ctx: RoundContext) -> RoundPlan | None:
    """The next round for ``state``, or None when every round of the schedule is done."""
    where = ctx.locate(state.rounds_done)
    if where is None:
        return None
    stage, stage_round = where
    sim = None
    if ctx.devices is None:
        selection = ctx.select(state, stage, state.rounds_done)
    else:  # a fleet decides who is asked, and the simulated clock who reports in time: only they train
        selection, sim = _fleet_selection(state, stage, ctx)
    deliveries = {c: stale_groups(ctx.schedule, state.synced[c], stage.index) for c in selection.clients}
    by_host: dict[int, list[int]] = {}
    for c in selection.clients:
        by_host.setdefault(ctx.host_of[c], []).append(c)
    tasks = tuple(RoundTask(h, state.rounds_done, stage, tuple(cs)) for h, cs in sorted(by_host.items()))
    return RoundPlan(state.rounds_done, stage, stage_round, selection.clients, tasks, deliveries, selection.rng, sim)


def _fleet_selection(state: ServerState, stage: StageSpec, ctx: RoundContext) -> tuple[Selection, Any]:
    """The sampled clients (eligible for the stage and online), timed on their devices; the kept ones train.
    Cut or dropped clients never run: the clock has already decided their work would arrive too late."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = state.rng
    cohort = ctx.devices.cohort(stage.index, state.rounds_done, ctx.cohort_target, rng)
    payload = ctx.bytes_of(stage.exchanged)
    down = np.array([payload + ctx.bytes_of(stale_groups(ctx.schedule, state.synced[c], stage.index))
                     for c in cohort.sampled], dtype=np.int64)
    timing = ctx.devices.time(stage.index, cohort, down, np.full(len(cohort.sampled), payload, dtype=np.int64))
    return Selection(timing.kept, rng.bit_generator.state), (cohort, timing)


@dataclass(frozen=True)
class ClientRow:
    """One client in one round (a line of clients.jsonl); figures are None where the client did not return."""

    round: int  # 1-based
    stage: int  # 1-based
    client: int
    status: str  # ok | failed (its host was lost) | dropped (a straggler past the round timeout)
    samples: int | None = None
    steps: int | None = None
    loss: float | None = None
    seconds: float | None = None  # wall time of its local training
    flops: int = 0
    peak_memory_bytes: int = 0
    bytes_to_client: int = 0  # exchanged tensors + frozen groups delivered to it
    bytes_from_client: int = 0
    device: str | None = None  # with a fleet: its device class, simulated seconds and status (kept/cut/dropped)
    sim_s: float | None = None
    sim_status: str | None = None


@dataclass(frozen=True)
class RoundRecord:
    """What a round did and cost; :meth:`row` is its line of metrics.jsonl (without eval and times)."""

    round: int  # 1-based
    stage: int  # 1-based
    stage_round: int  # 1-based
    cohort: tuple[int, ...]
    loss: float  # sample-weighted mean training loss of the clients that returned
    costs: Costs  # this round
    stage_costs: Costs  # the stage so far
    total_costs: Costs  # the run so far
    clients: tuple[ClientRow, ...]
    faults: dict[str, int] = field(default_factory=dict)
    grad: dict[str, float] = field(default_factory=dict)  # gradient-flow norms per group (fedray.training.gradflow)
    sim: dict[str, Any] = field(default_factory=dict)  # with a fleet: the round's sim/* keys

    def row(self, method: str) -> dict[str, Any]:
        return {
            "method": method, "stage": self.stage, "round": self.round, "stage_round": self.stage_round,
            "cohort": len(self.cohort), "train/loss": self.loss,
            "comm/bytes_to_clients": self.costs.bytes_to_clients, "comm/bytes_from_clients": self.costs.bytes_from_clients,
            "comm/total_bytes": self.total_costs.comm_bytes, "comm/stage_bytes": self.stage_costs.comm_bytes,
            "res/flops": self.costs.flops, "res/stage_flops": self.stage_costs.flops,
            "res/total_flops": self.total_costs.flops, "res/peak_memory_bytes": self.costs.peak_memory_bytes,
            **self.faults, **self.grad, **self.sim,
        }


def apply_round(state: ServerState, plan: RoundPlan, results: RoundResults, ctx: RoundContext
                ) -> tuple[ServerState, RoundRecord]:
    """The state after ``plan`` ran and ``results`` came back, and the round's record.

    Only clients that returned are charged (their download, upload, FLOPs and peak memory) and marked as holding
    the stage's frozen values; a lost or dropped client is charged nothing and receives its delivery next time.
    """
    stage = plan.stage
    payload = ctx.bytes_of(stage.exchanged)
    returned = [c for r in results.results for c in r.clients]  # task order, then client order: a fixed order
    charged = {c.client: Costs(payload + ctx.bytes_of(plan.deliveries[c.client]), payload, c.flops,
                               c.peak_memory_bytes) for c in returned}
    costs = Costs.parallel(charged.values())
    total = combine([r.partial for r in sorted(results.results, key=lambda r: r.host)])
    tensors, aggregator = state.tensors, state.aggregator
    update: dict[str, float] = {}
    if total.weight > 0:  # nobody returned samples: keep the global model
        current = {n: state.tensors[n] for n in ctx.names(stage.exchanged)}
        new, aggregator = ctx.aggregator.aggregate(total, current, state.aggregator)
        tensors = {**state.tensors, **new}
        update = group_norms(new, current, ctx.group_of.get, ctx.params)
    grad = record_keys(update, mean_norms([c.update_norms for c in returned]))
    ledger = state.ledger.charge(stage.index, costs)
    synced = {**state.synced, **{c: stage.index for c in charged}}
    clock, sim = state.sim_clock_s, {}
    if plan.sim is not None:
        cohort, timing = plan.sim
        clock += timing.round_s
        sim = round_record(cohort, timing, clock)
    after = ServerState(tensors, state.rounds_done + 1, plan.rng, synced, aggregator, ledger, clock)
    record = RoundRecord(plan.round + 1, stage.index + 1, plan.stage_round + 1, plan.cohort, _mean_loss(returned),
                         costs, ledger.stage(stage.index), ledger.total,
                         _client_rows(plan, returned, charged, results, ctx.devices), dict(results.faults), grad, sim)
    return after, record


def exchanged(state: ServerState, plan: RoundPlan, ctx: RoundContext) -> Tensors:
    """The global tensors the round's clients start from (the trainable groups)."""
    return {n: state.tensors[n] for n in ctx.names(plan.stage.exchanged)}


def _client_rows(plan: RoundPlan, returned: Sequence[Any], charged: dict[int, Costs], results: RoundResults,
                 devices: Any = None) -> tuple[ClientRow, ...]:
    by_client = {c.client: c for c in returned}
    rows = []
    sim = client_fields(devices.devices, plan.sim[1]) if plan.sim is not None else {}
    for client in plan.sim[1].clients if plan.sim is not None else ():  # asked, but late on the simulated clock
        if client not in plan.cohort:
            rows.append(ClientRow(plan.round + 1, plan.stage.index + 1, client, sim[client]["sim_status"],
                                  **sim[client]))
    for client in plan.cohort:
        r, s = plan.round + 1, plan.stage.index + 1
        if client in by_client:
            c, cost = by_client[client], charged[client]
            rows.append(ClientRow(r, s, client, "ok", c.num_samples, c.steps, None if math.isnan(c.loss) else c.loss,
                                  c.seconds, cost.flops, cost.peak_memory_bytes, cost.bytes_to_clients,
                                  cost.bytes_from_clients, **sim.get(client, {})))
        else:
            rows.append(ClientRow(r, s, client, "dropped" if client in results.dropped else "failed",
                                  **sim.get(client, {})))
    return tuple(sorted(rows, key=lambda row: row.client))


def _mean_loss(stats: Sequence[Any]) -> float:
    kept = [c for c in stats if not math.isnan(c.loss)]
    weight = sum(c.num_samples for c in kept)
    return sum(c.loss * c.num_samples for c in kept) / weight if weight else math.nan
