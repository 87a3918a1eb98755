"""Everything decided on the driver before any compute: data checks, partition, host packing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fedray.config import ConfigError, ExperimentConfig
from fedray.data import DatasetInfo, load_rows, open_dataset, split_rows
from fedray.data.assign import assign_clients
from fedray.data.dataset import read_columns
from fedray.data.features import audio_stats
from fedray.data.validate import validate_rows
from fedray.model import build_model
from fedray.model.pretrained import checkpoint_inputs
from fedray.packing import pack_clients, resolve_clients_per_actor
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
    partition: dict[str, Any] = field(default_factory=dict)  # sizes and label histograms (partition.json)

    @property
    def host_of(self) -> dict[int, int]:
        return {c: h for h, clients in enumerate(self.hosts) for c in clients}

    def host_rows(self, host: int) -> dict[int, np.ndarray]:
        return {c: self.client_rows[c] for c in self.hosts[host]}


def plan_run(cfg: ExperimentConfig) -> RunPlan:
    """Open the dataset, partition it, and check it against the config (no decoding, no Ray)."""
    info = open_dataset(cfg.data.source, cfg.data.storage)
    for m in cfg.model.towers:
        if m not in info.modalities:
            raise ConfigError(f"config key 'model.towers.{m}': dataset {info.name} has no {m} column "
                              f"(it has {', '.join(info.modalities)})")
    info = checkpoint_inputs(cfg, info)  # a pretrained text tower brings its own tokenizer
    if cfg.model.task == "classification" and not (info.inputs.num_classes and info.has_labels):
        raise ConfigError(f"config key 'model.task': classification needs a 'label' column and label_names "
                          f"in the metadata of dataset {info.path}")
    if cfg.model.task == "classification":
        labels = read_columns(info, ["label"]).column("label").to_numpy()
        if labels.min() < 0 or labels.max() >= info.inputs.num_classes:
            raise ConfigError(f"dataset {info.path}, column 'label': values must be in [0, {info.inputs.num_classes}) "
                              f"(one per label_names entry), found {labels.min()}..{labels.max()}")
    client_rows, partition = assign_clients(cfg, info)
    smallest = min(len(r) for r in client_rows)
    if smallest < cfg.train.batch_size:
        c = min(range(len(client_rows)), key=lambda i: len(client_rows[i]))
        raise ConfigError(f"config key 'train.batch_size': {cfg.train.batch_size} is larger than client {c}'s shard "
                          f"({smallest} rows); lower it or use fewer clients")
    eval_rows, _ = split_rows(info, "test", None)
    if len(eval_rows) < 2:
        raise ConfigError(f"dataset {info.name}: needs at least 2 rows in split 'test' to evaluate")
    if cfg.data.eval_limit and len(eval_rows) > cfg.data.eval_limit:
        pick = np.random.default_rng(cfg.train.seed).choice(len(eval_rows), cfg.data.eval_limit, replace=False)
        eval_rows = eval_rows[np.sort(pick)]
    validate_rows(cfg, info, np.concatenate([*client_rows, eval_rows]))  # every row read later, before any actor
    if "audio" in cfg.model.towers and info.audio_norm is None:  # standardise with training-row statistics
        info = replace(info, audio_norm=audio_stats(info, np.concatenate(client_rows)))
    cpus = cfg.runtime.num_cpus or os.cpu_count() or 1  # a cluster's real size re-packs "auto" in the backend
    return repack(RunPlan(cfg, info, client_rows, eval_rows, (), partition), cpus)


def repack(plan: RunPlan, cpus: float, gpus: float = 0.0) -> RunPlan:
    """The plan with clients packed into hosts for ``runtime.clients_per_actor`` on these resources."""
    rt = plan.cfg.runtime
    per_host = resolve_clients_per_actor(rt.clients_per_actor, len(plan.client_rows), cpus, gpus, rt.client_gpus)
    return replace(plan, hosts=pack_clients([len(r) for r in plan.client_rows], per_host))


def make_orchestrator(plan: RunPlan, fleet: Fleet, device: str = "cpu") -> Orchestrator:
    """The server side of a run: global model (same seed as the clients), schedule, eval shard."""
    cfg = plan.cfg
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed).to(device)
    max_length = max((t.max_length for m, t in cfg.model.towers.items() if m == "text"), default=32)  # captions only
    eval_shard = load_rows(plan.info, plan.eval_rows, max_length, caption=cfg.data.caption)
    return Orchestrator(cfg, model, build_schedule(cfg), fleet, plan.host_of, eval_shard)
