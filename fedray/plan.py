"""Everything decided on the driver before any compute: data checks, partition, host packing.

Packing ``runtime.clients_per_actor: auto`` depends on the resources the clients really get, so it is a separate
step (:func:`pack_hosts`) taken once those are known: this machine for the in-process backend and the private
local Ray, the joined cluster otherwise; a Tune trial packs for the bundles its sweep reserved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fedray.config import ConfigError, ExperimentConfig
from fedray.data import DatasetInfo, open_dataset, split_rows
from fedray.data.assign import assign_clients
from fedray.data.dataset import read_columns
from fedray.data.features import audio_stats
from fedray.data.validate import validate_rows
from fedray.model.pretrained import checkpoint_inputs
from fedray.packing import pack_clients, resolve_clients_per_actor
from fedray.resources.estimate import WORKLOADS, Workload


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the config, the dataset, which rows each client holds, and host packing."""

    cfg: ExperimentConfig
    info: DatasetInfo
    client_rows: tuple[np.ndarray, ...]  # dataset row indices per client
    eval_rows: np.ndarray
    hosts: tuple[tuple[int, ...], ...]  # client ids per host (empty until pack_hosts)
    partition: dict[str, Any] = field(default_factory=dict)  # sizes and label histograms (partition.json)
    devices: Any = None  # fedray.devices.DeviceSim with a ``fleet``: simulated devices and clock; else None

    @property
    def host_of(self) -> dict[int, int]:
        return {c: h for h, clients in enumerate(self.hosts) for c in clients}

    def host_rows(self, host: int) -> dict[int, np.ndarray]:
        return {c: self.client_rows[c] for c in self.hosts[host]}


def plan_run(cfg: ExperimentConfig, cpus: float | None = None, gpus: float = 0.0) -> RunPlan:
    """:func:`plan_data`, then :func:`pack_hosts` for ``cpus``/``gpus`` (default: this machine)."""
    return pack_hosts(plan_data(cfg), local_cpus(cfg) if cpus is None else cpus, gpus)


def local_cpus(cfg: ExperimentConfig) -> float:
    """CPUs of this machine as a run sees them (``runtime.num_cpus`` caps a Ray that fedray starts)."""
    return float(cfg.runtime.num_cpus or os.cpu_count() or 1)


def plan_data(cfg: ExperimentConfig) -> RunPlan:
    """Open the dataset, partition it, and check it and every row the run reads against the config (no Ray, no
    packing)."""
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
    # A fleet: build the devices and check them against every stage before any compute (fedray.devices).
    from fedray.devices.sim import prepare
    from fedray.schedules import build_schedule

    devices = prepare(cfg, build_schedule(cfg), info.inputs, [len(r) for r in client_rows])
    if devices is not None:
        partition = {**partition, "devices": devices.report()}
    return RunPlan(cfg, info, client_rows, eval_rows, (), partition, devices)


def pack_hosts(plan: RunPlan, cpus: float, gpus: float = 0.0) -> RunPlan:
    """The plan with clients packed into hosts; ``auto`` is resolved here, once, for ``cpus``/``gpus``: the
    resources the client actors will really get."""
    rt = plan.cfg.runtime
    per_host = resolve_clients_per_actor(rt.clients_per_actor, len(plan.client_rows), cpus, gpus, rt.client_gpus)
    return replace(plan, hosts=pack_clients([len(r) for r in plan.client_rows], per_host))


def workload_of(cfg: ExperimentConfig, preset: str | None) -> Workload:
    """What ``fedray resources`` measures for: a paper preset's packaged workload (by preset or config name), else
    the input shapes and the smallest client shard of the config's dataset."""
    for name in (preset, cfg.name):
        if name in WORKLOADS:
            return WORKLOADS[name]
    plan = plan_data(cfg)  # also validates the rows, as a run would
    return Workload(plan.info.inputs, min(len(r) for r in plan.client_rows))
