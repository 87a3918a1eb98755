"""The round loop of every run, in-process or inside the Ray server actor, and the typed events it yields.

Per round: plan it from the state (cohort, tasks, prefix deliveries), let the fleet run it (each host holding the
stage's frozen values first), apply what came back (aggregate, charge the ledger, mark who is synced), evaluate the
global tensors every ``train.eval_every`` rounds with the function the loop is given, and yield a
:class:`RoundDone`; a :class:`Checkpoint` every ``checkpoint_every`` rounds; :class:`Finished` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fedray.client import FrozenValues
from fedray.schedules import StageSpec
from fedray.server.fleet import Fleet
from fedray.server.rounds import RoundContext, apply_round, exchanged, plan_round
from fedray.server.state import ServerState
from fedray.training.finite import NonFiniteError, check_tensors

Evaluate = Callable[[dict[str, np.ndarray], StageSpec], dict[str, float]]  # global tensors, stage -> eval/* metrics


@dataclass(frozen=True)
class RoundDone:
    """A round finished: its metrics.jsonl row and one clients.jsonl row per cohort client."""

    record: dict[str, Any]
    clients: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Checkpoint:
    """The state after a round, to be written as the run's checkpoint."""

    state: ServerState


@dataclass(frozen=True)
class RunOutcome:
    """The end of a run: the final state and the last evaluation."""

    state: ServerState
    metrics: dict[str, float]


@dataclass(frozen=True)
class Finished:
    """The run is over."""

    outcome: RunOutcome


Event = RoundDone | Checkpoint | Finished


def _client_line(row: Any) -> dict[str, Any]:
    """A clients.jsonl line: the device fields only where a fleet set them."""
    return {k: v for k, v in asdict(row).items() if v is not None or k not in ("device", "sim_s", "sim_status")}


def run_rounds(state: ServerState, ctx: RoundContext, fleet: Fleet, evaluate: Evaluate,
               checkpoint_every: int) -> Iterator[Event]:
    """Run the rounds left after ``state`` (none done, or a checkpoint's) to the end of the schedule."""
    t0, metrics = time.perf_counter(), {}
    while (plan := plan_round(state, ctx)) is not None:
        start = time.perf_counter()
        frozen = FrozenValues(plan.stage.index, {n: state.tensors[n] for n in ctx.names(plan.stage.frozen)})
        results = fleet.run_round(list(plan.tasks), exchanged(state, plan, ctx), frozen if frozen.tensors else None)
        state, record = apply_round(state, plan, results, ctx)
        # finite updates can still sum (or a server optimiser step) to inf: never carry on from a broken model
        check_tensors({n: state.tensors[n] for n in ctx.names(plan.stage.exchanged)}, "global model",
                      ctx.group_of.get, round=record.round)
        row = record.row(ctx.method) | {"time/round_s": time.perf_counter() - start}
        if ctx.evaluates(record.round):
            start = time.perf_counter()
            try:
                metrics = evaluate(state.tensors, plan.stage)
            except NonFiniteError as err:  # evaluation names the tower and held-out rows; the round is known here
                raise err.located(round=record.round) from None
            row |= metrics | {"time/eval_s": time.perf_counter() - start}
        yield RoundDone(row | {"time/elapsed_s": time.perf_counter() - t0}, [_client_line(c) for c in record.clients])
        if checkpoint_every and state.rounds_done % checkpoint_every == 0:
            yield Checkpoint(state)
    yield Finished(RunOutcome(state, metrics))
