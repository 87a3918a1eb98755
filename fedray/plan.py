"""Everything decided on the driver before any compute: data checks, partition, host packing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedray.config import ConfigError, ExperimentConfig
from fedray.data import DatasetInfo, load_rows, open_dataset, split_rows
from fedray.data.partition import iid
from fedray.model import build_model
from fedray.schedules import build_schedule
from fedray.server import Fleet, Orchestrator


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the config, the dataset, which rows each client holds, and host packing."""

    cfg: ExperimentConfig
    info: DatasetInfo
    client_rows: tuple[np.ndarray, ...]  # dataset row indices per client
    eval_rows: np.ndarray
    hosts: tuple[tuple[int, ...], ...]  # client ids per host

    @property
    def host_of(self) -> dict[int, int]:
        return {c: h for h, clients in enumerate(self.hosts) for c in clients}

    def host_rows(self, host: int) -> dict[int, np.ndarray]:
        return {c: self.client_rows[c] for c in self.hosts[host]}


def plan_run(cfg: ExperimentConfig) -> RunPlan:
    """Open the dataset, partition it, and check it against the config (no decoding, no Ray)."""
    info = open_dataset(cfg.data.source)
    for m in cfg.model.towers:
        if m not in info.modalities:
            raise ConfigError(f"config key 'model.towers.{m}': dataset {info.name} has no {m} column "
                              f"(it has {', '.join(info.modalities)})")
    train_rows, labels = split_rows(info, "train", cfg.data.partition.label_column)
    if cfg.data.train_limit:
        train_rows = train_rows[: cfg.data.train_limit]
    parts = iid(len(train_rows), cfg.data.num_clients, cfg.train.seed)
    client_rows = tuple(train_rows[p] for p in parts)
    smallest = min(len(r) for r in client_rows)
    if smallest < cfg.train.batch_size:
        c = min(range(len(client_rows)), key=lambda i: len(client_rows[i]))
        raise ConfigError(f"config key 'train.batch_size': {cfg.train.batch_size} is larger than client {c}'s shard "
                          f"({smallest} rows); lower it or use fewer clients")
    eval_rows, _ = split_rows(info, "test")
    if len(eval_rows) < 2:
        raise ConfigError(f"dataset {info.name}: needs at least 2 rows in split 'test' to evaluate")
    if cfg.data.eval_limit and len(eval_rows) > cfg.data.eval_limit:
        pick = np.random.default_rng(cfg.train.seed).choice(len(eval_rows), cfg.data.eval_limit, replace=False)
        eval_rows = eval_rows[np.sort(pick)]
    hosts = tuple((c,) for c in range(cfg.data.num_clients))
    return RunPlan(cfg, info, client_rows, eval_rows, hosts)


def make_orchestrator(plan: RunPlan, fleet: Fleet, device: str = "cpu") -> Orchestrator:
    """The server side of a run: global model (same seed as the clients), schedule, eval shard."""
    cfg = plan.cfg
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed).to(device)
    max_length = max(t.max_length for t in cfg.model.towers.values())
    eval_shard = load_rows(plan.info, plan.eval_rows, max_length, caption=cfg.data.caption)
    return Orchestrator(cfg, model, build_schedule(cfg), fleet, plan.host_of, eval_shard)
