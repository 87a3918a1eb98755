"""A non-finite value anywhere in the round engine stops the run with a named error (round, client, tensor): a NaN
loss (the CLI, exit 2), a NaN update whose loss was finite, a global model that overflows, a NaN evaluation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedray.cli import main
from fedray.server import InProcessFleet, plan_round, run_rounds
from fedray.server.rounds import exchanged
from fedray.training.finite import NonFiniteError

TINY = ["run", "--preset", "tiny", "--set", "runtime.backend=local"]


def test_a_nan_loss_stops_the_run_naming_round_and_client(tmp_path, capsys, one_thread):
    out = tmp_path / "run"

    code = main([*TINY, "--set", "train.lr={image: 1e30, text: 1e30, head: 1e30}", "--out", str(out)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fedray: error: non-finite train/loss (nan) in round 1, client 0, local step ")
    assert "lower the learning rates (train.lr)" in err and "Traceback" not in err and err.count("\n") == 1
    assert (out / "FAILED").is_file()
    assert not any((out / name).exists() for name in ("summary.json", "model.safetensors", "towers", "metrics.jsonl"))


def test_a_nan_update_with_a_finite_loss_never_reaches_the_sum(tiny, in_process_server):
    """A NaN BatchNorm statistic in the payload: training mode normalises with batch statistics, so the loss stays
    finite, but the running variance the client sends back is NaN."""
    fleet, ctx, _, state = in_process_server(tiny("runtime.backend=local", "model.head.kind=paper"))
    plan = plan_round(state, ctx)
    payload = exchanged(state, plan, ctx)
    name = next(n for n in sorted(payload) if n.endswith("running_var"))
    payload[name] = np.full_like(payload[name], np.nan)
    task = plan.tasks[1]

    with pytest.raises(NonFiniteError) as info:
        fleet.hosts[task.host].train(task, payload)

    err = info.value
    assert (err.round, err.client) == (1, task.clients[0])
    assert str(err).startswith(f"non-finite update tensor '{name}' (group {ctx.group_of[name]}) ("
                               f"{payload[name].size} of {payload[name].size} values non-finite) in round 1, client")


class Overflows(InProcessFleet):
    """The in-process fleet, but one host's partial sum of ``name`` is infinite in round 2 (as when finite updates
    sum past float32's range): what only the server can see."""

    def __init__(self, inner: InProcessFleet, name: str) -> None:
        super().__init__(inner.hosts)
        self.name = name

    def run_round(self, tasks, payload, frozen):
        results = super().run_round(tasks, payload, frozen)
        if tasks[0].round == 1:
            sums = results.results[0].partial.sums
            sums[self.name] = np.full_like(sums[self.name], np.inf)
        return results


def test_a_global_model_that_overflows_stops_the_run_naming_the_round_and_tensor(tiny, in_process_server):
    fleet, ctx, evaluate, state = in_process_server(tiny("runtime.backend=local", "train.rounds=[2, 0]"))
    name = next(n for n, g in ctx.group_of.items() if g == "text.block.0")
    events = []

    with pytest.raises(NonFiniteError) as info:
        for event in run_rounds(state, ctx, Overflows(fleet, name), evaluate, 0):
            events.append(event)

    assert str(info.value).startswith(f"non-finite global model tensor '{name}' (group text.block.0) (")
    assert info.value.round == 2 and info.value.client is None
    assert len(events) == 1  # round 1's row; round 2 never yields a row, a checkpoint or a result


def test_a_non_finite_evaluation_is_located_at_its_round(tiny, in_process_server):
    fleet, ctx, _, state = in_process_server(tiny("runtime.backend=local", "train.rounds=[2, 0]"))

    def evaluate(tensors, stage):  # what fedray.training.evaluate raises on NaN embeddings, without the round
        raise NonFiniteError("evaluation embeddings of the image tower (held-out rows 0..31)", "3 of 64 values non-finite")

    with pytest.raises(NonFiniteError, match=r"^non-finite evaluation embeddings of the image tower \(held-out rows "
                                             r"0\.\.31\) \(3 of 64 values non-finite\) in round 1;"):
        list(run_rounds(state, replace(ctx, eval_every=1), fleet, evaluate, 0))
