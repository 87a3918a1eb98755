"""The server side of a run, built from its plan: round context, initial state, and the global-model evaluator."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedray.data import Shard, load_rows
from fedray.model import MultimodalModel, build_model
from fedray.schedules import StageSpec, build_schedule
from fedray.server.rounds import RoundContext, UniformCohort, cohort_size
from fedray.server.state import ServerState, initial_state
from fedray.training import evaluate, make_aggregator

if TYPE_CHECKING:
    from fedray.plan import RunPlan


class GlobalEvaluator:
    """Evaluates global tensors on the held-out split with one model whose tensors *are* the state's arrays
    (bound without a copy), so the server holds the global model once."""

    def __init__(self, model: MultimodalModel, shard: Shard, batch_size: int) -> None:
        self.model, self.shard, self.batch_size = model, shard, batch_size

    def bind(self, tensors: dict[str, np.ndarray]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only arrays (object store): evaluation never writes
            self.model.load_state_dict({n: torch.from_numpy(v) for n, v in tensors.items()}, assign=True)

    def __call__(self, tensors: dict[str, np.ndarray], stage: StageSpec) -> dict[str, float]:
        self.model.set_depths(stage.depths)
        self.bind(tensors)
        return evaluate(self.model, self.shard, self.batch_size)


def build_server(plan: RunPlan) -> tuple[RoundContext, GlobalEvaluator, ServerState]:
    """The global model from the seed (the same initial weights every client builds), the schedule, the eval split."""
    cfg = plan.cfg
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed)
    tensors = {n: t.detach().numpy().copy() for n, t in model.state_dict().items()}
    group_of = {n: model.group_of(n) for n in tensors}
    group_bytes: dict[str, int] = {}
    for name, value in tensors.items():
        group_bytes[group_of[name]] = group_bytes.get(group_of[name], 0) + value.nbytes
    params = frozenset(n for n, _ in model.named_parameters())
    clients = len(plan.client_rows)
    k = cohort_size(clients, cfg.train.participation)
    ctx = RoundContext(tuple(build_schedule(cfg)), plan.host_of, group_of, group_bytes,
                       make_aggregator(cfg.train.strategy, params), UniformCohort(clients, k),
                       cfg.train.method, cfg.train.eval_every, plan.devices, k, params)
    max_length = max((t.max_length for m, t in cfg.model.towers.items() if m == "text"), default=32)  # captions only
    evaluator = GlobalEvaluator(model, load_rows(plan.info, plan.eval_rows, max_length, caption=cfg.data.caption),
                                cfg.train.batch_size)
    state = initial_state(tensors, cfg.train.seed, clients)
    evaluator.bind(state.tensors)  # from here on the model's own copy is gone
    return ctx, evaluator, state
