"""The server's stage/round loop, shared by every method and every fleet. No Ray.

Per round: sample a cohort, send the exchanged tensors (and, once per stage, frozen groups a
client has not seen since they last changed), aggregate the returned partial sums in host
order, evaluate every ``eval_every`` rounds. ``run()`` yields one record per round, then
returns a :class:`RunOutcome`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fedray.client import HostResult, RoundTask, load_state, to_numpy
from fedray.config import ExperimentConfig
from fedray.data import Shard
from fedray.model import MultimodalModel
from fedray.schedules import StageSpec
from fedray.server.fleet import Fleet
from fedray.training import combine, evaluate, nbytes, weighted_mean


@dataclass
class RunOutcome:
    """The end of a run: final metrics, totals, and the global model's tensors."""

    metrics: dict[str, float]
    comm_bytes: int
    rounds: int
    state: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    flops: int = 0  # training FLOPs over all clients and rounds
    peak_memory_bytes: int = 0  # the largest peak training memory any client reached


def cohort_size(num_clients: int, participation: float) -> int:
    return max(1, min(num_clients, round(participation * num_clients)))


class Orchestrator:
    """Runs a schedule over a fleet and keeps the global model."""

    def __init__(self, cfg: ExperimentConfig, model: MultimodalModel, schedule: list[StageSpec], fleet: Fleet,
                 host_of: dict[int, int], eval_shard: Shard) -> None:
        self.cfg = cfg
        self.model = model
        self.schedule = schedule
        self.fleet = fleet
        self.host_of = host_of  # client id -> host index
        self.eval_shard = eval_shard
        self.num_clients = len(host_of)
        self.rng = np.random.default_rng(cfg.train.seed)  # cohort sampling
        # Stage up to which each client / host holds current values of every frozen group.
        self.client_synced = {c: 0 for c in host_of}
        self.host_synced = {h: 0 for h in set(host_of.values())}
        self.changed: dict[int, frozenset[str]] = {}  # stage -> groups that training changed in it
        self.comm_bytes = 0
        self.rounds_done = 0  # rounds finished (a checkpoint's position)
        self.start_round = 0  # rounds to skip: > 0 after import_state
        self._group_bytes: dict[str, int] = {}  # bytes per layer group: shapes never change during a run
        for name, tensor in model.state_dict().items():
            group = model.group_of(name)
            self._group_bytes[group] = self._group_bytes.get(group, 0) + tensor.numel() * tensor.element_size()
        self.flops = self.peak_memory_bytes = 0  # run totals (the ledger)
        self.stage_flops = self.stage_comm = 0  # running totals of the current stage

    def _stale(self, synced: int, stage: StageSpec) -> set[str]:
        """Frozen groups changed by training since stage ``synced``."""
        out: set[str] = set()
        for s in range(synced, stage.index):
            out |= self.changed.get(s, frozenset())
        return out & stage.frozen

    def run(self) -> Generator[dict[str, Any], None, RunOutcome]:
        """Run every stage; yield a metrics record per round."""
        cfg, t0 = self.cfg, time.perf_counter()
        k = cohort_size(self.num_clients, cfg.train.participation)
        total_rounds = sum(s.rounds for s in self.schedule)
        metrics: dict[str, float] = {}
        round_idx = 0
        for spec in self.schedule:
            if spec.rounds == 0:
                continue
            self.model.set_depths(spec.depths)
            self.changed[spec.index] = spec.trainable
            for stage_round in range(spec.rounds):
                if round_idx < self.start_round:  # resumed: this round ran before the checkpoint
                    round_idx += 1
                    continue
                if stage_round == 0:
                    self.stage_flops = self.stage_comm = 0
                start = time.perf_counter()
                cohort = sorted(int(c) for c in self.rng.choice(self.num_clients, k, replace=False))
                payload = to_numpy(self.model.state(spec.exchanged))
                sent, received, prefix, prefix_hosts = self._plan_prefix(spec, cohort, nbytes(payload))
                tasks = self._tasks(spec, round_idx, cohort)
                results = self.fleet.run_round(tasks, payload, prefix, prefix_hosts)
                self._aggregate(results, payload)
                self.comm_bytes += sent + received
                flops, peak = _resources(results)
                self.flops += flops
                self.peak_memory_bytes = max(self.peak_memory_bytes, peak)
                self.stage_flops, self.stage_comm = self.stage_flops + flops, self.stage_comm + sent + received
                round_idx += 1
                record = {
                    "method": cfg.train.method, "stage": spec.index + 1, "round": round_idx,
                    "stage_round": stage_round + 1, "cohort": len(cohort),
                    "train/loss": _mean_loss(results),
                    "comm/bytes_to_clients": sent, "comm/bytes_from_clients": received,
                    "comm/total_bytes": self.comm_bytes, "comm/stage_bytes": self.stage_comm,
                    "res/flops": flops, "res/stage_flops": self.stage_flops, "res/total_flops": self.flops,
                    "res/peak_memory_bytes": peak,
                    "time/round_s": time.perf_counter() - start,
                }
                if round_idx % cfg.train.eval_every == 0 or round_idx == total_rounds:
                    metrics = evaluate(self.model, self.eval_shard, cfg.train.batch_size)
                    record.update(metrics)
                record["time/elapsed_s"] = time.perf_counter() - t0
                self.rounds_done = round_idx
                yield record
        state = to_numpy({n: t.clone() for n, t in self.model.state_dict().items()})
        return RunOutcome(metrics, self.comm_bytes, round_idx, state, self.flops, self.peak_memory_bytes)

    def export_state(self) -> dict[str, Any]:
        """The position and global state after ``rounds_done`` rounds: tensors and plain Python values only,
        so a checkpoint loads with ``torch.load(weights_only=True)``. Hosts' sync state is left out: a
        resumed run has new hosts, which get every stale frozen group again."""
        return {
            "round": self.rounds_done,
            "model": {n: t.detach().cpu().clone() for n, t in self.model.state_dict().items()},
            "rng": self.rng.bit_generator.state,  # cohort sampling continues where it stopped
            "client_synced": dict(self.client_synced),
            "comm_bytes": self.comm_bytes,
            "ledger": [self.flops, self.peak_memory_bytes, self.stage_flops, self.stage_comm],
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`export_state`'s output: ``run()`` then skips the rounds already done."""
        with torch.no_grad():
            self.model.load_state_dict(state["model"])
        self.rng.bit_generator.state = state["rng"]
        self.client_synced = {int(c): int(s) for c, s in state["client_synced"].items()}
        self.comm_bytes = int(state["comm_bytes"])
        self.flops, self.peak_memory_bytes, self.stage_flops, self.stage_comm = (int(v) for v in state["ledger"])
        self.start_round = self.rounds_done = int(state["round"])

    def _plan_prefix(self, spec: StageSpec, cohort: list[int], payload_bytes: int
                     ) -> tuple[int, int, dict[str, np.ndarray] | None, set[int]]:
        """Bytes to and from the cohort, and the frozen groups hosts must receive before training."""
        sent = received = 0
        for c in cohort:
            stale = self._stale(self.client_synced[c], spec)
            sent += payload_bytes + sum(self._group_bytes[g] for g in stale)
            received += payload_bytes
            self.client_synced[c] = spec.index
        hosts = {self.host_of[c] for c in cohort}
        needy = {h for h in hosts if self._stale(self.host_synced[h], spec)}
        groups = set().union(*(self._stale(self.host_synced[h], spec) for h in needy)) if needy else set()
        for h in hosts:
            self.host_synced[h] = spec.index
        prefix = to_numpy(self.model.state(groups)) if groups else None
        return sent, received, prefix, needy

    def _tasks(self, spec: StageSpec, round_idx: int, cohort: list[int]) -> list[RoundTask]:
        by_host: dict[int, list[int]] = {}
        for c in cohort:
            by_host.setdefault(self.host_of[c], []).append(c)
        return [RoundTask(h, round_idx, spec, tuple(cs)) for h, cs in sorted(by_host.items())]

    def _aggregate(self, results: list[HostResult], payload: dict[str, np.ndarray]) -> None:
        total = combine([r.partial for r in sorted(results, key=lambda r: r.host)])
        if total.weight == 0:
            return  # nobody returned samples: keep the global model
        with torch.no_grad():
            load_state(self.model, weighted_mean(total, payload))


def _resources(results: list[HostResult]) -> tuple[int, int]:
    """A round's training FLOPs (sum over clients) and peak memory (max over clients)."""
    stats = [c for r in results for c in r.clients]
    return sum(c.flops for c in stats), max((c.peak_memory_bytes for c in stats), default=0)


def _mean_loss(results: list[HostResult]) -> float:
    stats = [c for r in results for c in r.clients if not math.isnan(c.loss)]
    weight = sum(c.num_samples for c in stats)
    return sum(c.loss * c.num_samples for c in stats) / weight if weight else math.nan
