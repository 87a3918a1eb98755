"""One run's device simulation: everything the round engine needs from ``fedray.devices``, decided once.

:func:`prepare` (on the driver, in the run's plan, before any compute) builds the devices, measures each stage's
peak memory and step FLOPs, and checks the fleet against the schedule. The engine then calls, per round,
:meth:`DeviceSim.cohort` (who is asked to train) and :meth:`DeviceSim.time` (who is kept, how long it took).
Both are pure given their inputs, so the same on every backend; the only state a checkpoint needs is the clock
(a float the engine keeps) — availability is keyed by (seed, round), and cohorts use the engine's sampler RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.config import ExperimentConfig
from fedray.devices.clock import Cohort, RoundTiming, online, select_cohort, time_round
from fedray.devices.costs import local_steps, stage_costs
from fedray.devices.eligibility import check_fleet, eligibility_report
from fedray.devices.profiles import Devices, build_devices
from fedray.model import InputSpec
from fedray.schedules import StageSpec


@dataclass(frozen=True, eq=False)
class DeviceSim:
    """The population's devices, per-stage eligibility and costs, and the round rules of ``fleet``."""

    devices: Devices
    eligible: dict[int, np.ndarray]  # stage index (stages with rounds) -> bool per client
    peaks: dict[int, int]  # stage index -> peak training memory, bytes
    step_flops: dict[int, int]  # stage index -> FLOPs of one local step
    steps: np.ndarray  # local steps per round, per client (local_epochs x floor(shard / batch))
    seed: int
    over_selection: float
    deadline_s: float | None

    def cohort(self, stage: int, round_idx: int, k: int, rng: np.random.Generator) -> Cohort:
        """Round ``round_idx`` (0-based over the run) of stage ``stage``: the clients asked to train.
        ``rng`` is the engine's cohort sampler (the one a run without a fleet uses)."""
        return select_cohort(self.eligible[stage], online(self.devices, self.seed, round_idx), k,
                             self.over_selection, rng)

    def flops(self, stage: int, clients: tuple[int, ...]) -> np.ndarray:
        """Training FLOPs of the round per client, as the ledger will charge them."""
        return self.step_flops[stage] * self.steps[np.array(clients, dtype=np.int64)]

    def time(self, stage: int, cohort: Cohort, bytes_down: np.ndarray, bytes_up: np.ndarray) -> RoundTiming:
        """Time the cohort (per-client bytes aligned with ``cohort.sampled``) and decide who is kept."""
        return time_round(self.devices, cohort.sampled, bytes_down, self.flops(stage, cohort.sampled), bytes_up,
                          cohort.target, self.deadline_s)

    def report(self) -> dict[str, Any]:
        """JSON-ready for partition.json: the devices per client and, per stage, its peak and eligible clients."""
        return {**self.devices.report(), "stages": eligibility_report(self.devices, self.peaks, self.eligible)}


def prepare(cfg: ExperimentConfig, schedule: list[StageSpec], inputs: InputSpec, shard_sizes: list[int]
            ) -> DeviceSim | None:
    """The run's device simulation, or None without a fleet. Raises ConfigError/FleetError before any compute:
    a bad trace, no device able to train a stage with rounds, or ``strict`` with a client that cannot."""
    devices = build_devices(cfg.fleet, cfg.data.num_clients, cfg.train.seed, cfg.data.storage)
    if devices is None:
        return None
    costs = stage_costs(cfg, schedule, inputs)
    peaks = {s: c.memory_bytes for s, c in costs.items()}
    masks = check_fleet(devices, peaks, cfg.fleet.policy, cfg.train.method, cfg.train.batch_size)
    steps = local_steps(shard_sizes, cfg.train.local_epochs, cfg.train.batch_size)
    return DeviceSim(devices, masks, peaks, {s: c.flops for s, c in costs.items()}, steps, cfg.train.seed,
                     cfg.fleet.over_selection, cfg.fleet.deadline_s)
