"""The round engine's pure parts and its loop (in-process fleet): planning, applying, events, the state as a value,
per-client rows, and a ledger that charges only what came back."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import torch
from safetensors.numpy import load_file

from fedray.api import run_experiment
from fedray.schedules import stale_groups
from fedray.server import (
    Checkpoint,
    Finished,
    InProcessFleet,
    RoundDone,
    apply_round,
    plan_round,
    run_rounds,
)
from fedray.server.checkpoint import dumps
from fedray.server.state import from_dict

# lw over 3 stages (3-block towers, one block per stage), 2 clients, one round per stage.
THREE = ("runtime.backend=local", "train.stages=3", "train.rounds=[1, 1, 1]", "model.towers.image.num_layers=3",
         "model.towers.text.num_layers=3", "data.train_limit=64", "train.batch_size=16", "runtime.torch_threads=1")


class DropsClient(InProcessFleet):
    """The in-process fleet, but ``client``'s host never returns in round ``round`` (0-based): reported lost."""

    def __init__(self, inner: InProcessFleet, client: int, round_index: int) -> None:
        super().__init__(inner.hosts)
        self.client, self.round_index = client, round_index

    def run_round(self, tasks, payload, frozen):
        if tasks[0].round != self.round_index:
            return super().run_round(tasks, payload, frozen)
        kept = [t for t in tasks if self.client not in t.clients]
        return replace(super().run_round(kept, payload, frozen), lost=(self.client,))


def test_a_lost_client_is_not_charged_and_stays_unsynced(tiny, in_process_server):
    fleet, ctx, evaluate, state = in_process_server(tiny(*THREE))
    fleet = DropsClient(fleet, client=1, round_index=1)  # client 1 is lost in stage 2
    events = list(run_rounds(state, ctx, fleet, evaluate, checkpoint_every=1))
    done = [e for e in events if isinstance(e, RoundDone)]
    states = [e.state for e in events if isinstance(e, Checkpoint)]
    first, second, third = ctx.schedule
    payload = [ctx.bytes_of(s.exchanged) for s in ctx.schedule]

    # Stage 2: only client 0 is charged (its download holds the stage-1 groups it now keeps frozen).
    r2 = done[1].record
    assert r2["comm/bytes_from_clients"] == payload[1]
    assert r2["comm/bytes_to_clients"] == payload[1] + ctx.bytes_of(stale_groups(ctx.schedule, 0, 1))
    assert r2["res/flops"] == done[1].clients[0]["flops"] > 0 and r2["cohort"] == 2
    assert [(c["client"], c["status"], c["bytes_to_client"], c["flops"]) for c in done[1].clients][1] == (1, "failed", 0, 0)
    assert states[1].synced == {0: 1, 1: 0}  # the lost client does not hold stage 2's frozen values
    # Stage 3: the lost client receives everything that changed since stage 1, client 0 only stage 2's groups.
    rows = {c["client"]: c for c in done[2].clients}
    own = {0: stale_groups(ctx.schedule, 1, 2), 1: stale_groups(ctx.schedule, 0, 2)}
    assert own[0] < own[1] and own[1] - own[0] == first.trainable & third.frozen - second.trainable
    for c in (0, 1):
        assert rows[c]["status"] == "ok" and rows[c]["bytes_to_client"] == payload[2] + ctx.bytes_of(own[c])
    assert done[2].record["comm/bytes_to_clients"] == 2 * payload[2] + ctx.bytes_of(own[0]) + ctx.bytes_of(own[1])
    assert states[2].synced == {0: 2, 1: 2}
    totals = states[2].ledger.total
    assert totals.comm_bytes == sum(d.record["comm/bytes_to_clients"] + d.record["comm/bytes_from_clients"]
                                    for d in done)
    assert [states[2].ledger.stage(s).flops for s in range(3)] == [d.record["res/flops"] for d in done]


def test_plan_and_apply_are_pure_and_resume_from_the_state_value(tiny, in_process_server):
    fleet, ctx, evaluate, state = in_process_server(tiny(*THREE))
    plan = plan_round(state, ctx)
    assert plan_round(state, ctx) == plan  # the same state plans the same round (cohort, tasks, deliveries)
    assert (plan.round, plan.stage.index, plan.cohort, [t.clients for t in plan.tasks]) == (0, 0, (0, 1), [(0,), (1,)])
    before = {n: v.copy() for n, v in state.tensors.items()}
    results = fleet.run_round(list(plan.tasks), {n: state.tensors[n] for n in ctx.names(plan.stage.exchanged)}, None)
    after, record = apply_round(state, plan, results, ctx)
    assert all(np.array_equal(before[n], state.tensors[n]) for n in before)  # the old state is untouched
    assert after.rounds_done == 1 and state.rounds_done == 0 and after.synced == {0: 0, 1: 0}
    assert record.round == 1 and record.costs.flops == sum(c.flops for r in results.results for c in r.clients)
    # The checkpoint is the state serialized; it loads with weights_only and continues identically.
    saved = torch.load(io.BytesIO(dumps({}, [], after)), weights_only=True)
    again = from_dict(saved["state"])
    assert again.rng == after.rng and again.ledger == after.ledger and again.synced == after.synced
    assert plan_round(again, ctx) == plan_round(after, ctx)


def test_events_and_run_directory_files(tiny, tmp_path, in_process_server):
    cfg = tiny("runtime.backend=local", "train.rounds=[2, 1]", "runtime.checkpoint_every=2", "data.num_clients=3",
               "train.participation=0.67", "train.batch_size=16")
    fleet, ctx, evaluate, state = in_process_server(cfg)
    kinds = [type(e).__name__ for e in run_rounds(state, ctx, fleet, evaluate, 2)]
    assert kinds == ["RoundDone", "RoundDone", "Checkpoint", "RoundDone", "Finished"]

    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    lines = [json.loads(line) for line in (tmp_path / "run" / "clients.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * 2 and {c["status"] for c in lines} == {"ok"}
    for row in result.rows:
        mine = [c for c in lines if c["round"] == row["round"]]
        assert all(c["stage"] == row["stage"] and c["samples"] and c["steps"] and c["seconds"] > 0 for c in mine)
        assert sum(c["bytes_to_client"] for c in mine) == row["comm/bytes_to_clients"]
        assert sum(c["bytes_from_client"] for c in mine) == row["comm/bytes_from_clients"]
        assert sum(c["flops"] for c in mine) == row["res/flops"]
        assert max(c["peak_memory_bytes"] for c in mine) == row["res/peak_memory_bytes"]
    model = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert model.keys() == result.state.keys() and all(np.array_equal(model[n], result.state[n]) for n in model)


def test_finished_carries_the_final_state(tiny, in_process_server):
    fleet, ctx, evaluate, state = in_process_server(tiny("runtime.backend=local", "train.eval_every=5"))
    events = list(run_rounds(state, ctx, fleet, evaluate, 0))
    assert not any(isinstance(e, Checkpoint) for e in events)
    end = events[-1]
    assert isinstance(end, Finished) and end.outcome.state.rounds_done == 2 and "eval/i2t_r1" in end.outcome.metrics
    assert [("eval/i2t_r1" in e.record) for e in events if isinstance(e, RoundDone)] == [False, True]  # last round
