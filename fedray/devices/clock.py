"""The simulated clock: who is online, who is asked to train, who is kept, and how long a round takes.

Accounting only — nothing sleeps. A client's round time is

    latency + bytes down / downlink + FLOPs / throughput + bytes up / uplink

from the exact bytes and FLOPs the ledger counts, all known before training (bytes from the round's plan,
FLOPs = step FLOPs x steps), so a round is timed before it runs and clients that will be cut are never trained.

A round asks for ``k`` updates (``cohort_size`` of the population). It samples ``ceil(k * (1 + over_selection))``
of the eligible clients that are online, and closes at the earliest of: the k-th report, the deadline, the last
report. Clients that reported by then are *kept* (their updates are aggregated); the others are *cut* (the round
had its k updates first) or *dropped* (the round closed at the deadline). Ties go to the lower client id.

The ledger (comm/*, res/*) charges kept clients only — the work whose result the server used. What cut and
dropped clients spent until the round closed (the part of their download, compute and upload done by then) is
reported apart, as ``sim/wasted_*``. An empty round (no eligible client online) leaves the model unchanged and
takes ``deadline_s`` (0 without a deadline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.devices.profiles import AVAILABILITY_STREAM, Devices


def online(devices: Devices, seed: int, round_idx: int) -> np.ndarray:
    """Per client: is its device online in round ``round_idx`` (0-based over the run)?

    One uniform draw per client per round from a stream keyed by (seed, round): no state to checkpoint, the same
    on every backend and after ``--resume``, and independent of the cohort sampler, so a run without a fleet
    samples exactly as before.
    """
    u = np.random.default_rng([seed, AVAILABILITY_STREAM, round_idx]).random(len(devices))
    return u < devices.availability


@dataclass(frozen=True)
class Cohort:
    """The clients a round asks to train, and the pool they came from."""

    target: int  # k: updates the round wants
    eligible: int  # clients whose device can hold the stage
    online: int  # of those, online this round
    sampled: tuple[int, ...]  # asked to train, ascending client id


def select_cohort(can_train: np.ndarray, is_online: np.ndarray, k: int, over_selection: float,
                  rng: np.random.Generator) -> Cohort:
    """Sample ``ceil(k * (1 + over_selection))`` clients (at most the pool) from the eligible online ones.

    With every client eligible and online and no over-selection this is ``rng.choice(num_clients, k)``: the
    draw a run without a fleet makes, so a fleet of identical always-on devices samples exactly as no fleet.
    """
    pool = np.flatnonzero(can_train & is_online)
    want = min(len(pool), math.ceil(k * (1 + over_selection) - 1e-9))  # 1e-9: 10 * 1.3 is 13.000000000000002
    picked = pool[rng.choice(len(pool), want, replace=False)] if want else pool[:0]
    return Cohort(k, int(can_train.sum()), len(pool), tuple(sorted(int(c) for c in picked)))


@dataclass(frozen=True, eq=False)
class RoundTiming:
    """A round on the simulated clock. Arrays are aligned with ``clients`` (the sampled clients)."""

    clients: tuple[int, ...]
    parts_s: np.ndarray  # (n, 4) seconds: latency, download, compute, upload
    status: tuple[str, ...]  # kept | cut | dropped
    round_s: float  # when the round closed, from its start
    wasted_bytes_to_clients: int  # cut and dropped clients: what they had received when the round closed
    wasted_bytes_from_clients: int  # ... and sent
    wasted_flops: int  # ... and computed

    @property
    def finish_s(self) -> np.ndarray:
        return self.parts_s.sum(axis=1)

    def with_status(self, status: str) -> tuple[int, ...]:
        return tuple(c for c, s in zip(self.clients, self.status) if s == status)

    @property
    def kept(self) -> tuple[int, ...]:
        return self.with_status("kept")


def client_parts(devices: Devices, clients: np.ndarray, bytes_down: np.ndarray, flops: np.ndarray,
                 bytes_up: np.ndarray) -> np.ndarray:
    """(n, 4) seconds per client: latency, download, compute, upload."""
    c = np.asarray(clients, dtype=np.int64)
    return np.stack([devices.latency_s[c],
                     np.asarray(bytes_down, dtype=np.float64) / devices.down_bytes_per_s[c],
                     np.asarray(flops, dtype=np.float64) / devices.flops_per_s[c],
                     np.asarray(bytes_up, dtype=np.float64) / devices.up_bytes_per_s[c]], axis=1).reshape(len(c), 4)


def time_round(devices: Devices, clients: tuple[int, ...], bytes_down: np.ndarray, flops: np.ndarray,
               bytes_up: np.ndarray, k: int, deadline_s: float | None) -> RoundTiming:
    """Time the sampled ``clients`` (per-client bytes and FLOPs aligned with them) and close the round."""
    n = len(clients)
    parts = client_parts(devices, np.array(clients, dtype=np.int64), bytes_down, flops, bytes_up)
    finish = parts.sum(axis=1)
    order = sorted(range(n), key=lambda i: (finish[i], clients[i]))
    in_time = [i for i in order if deadline_s is None or finish[i] <= deadline_s]
    if len(in_time) >= k and n:  # the k-th report closes the round
        kept, close, late = set(in_time[:k]), float(finish[in_time[k - 1]]), "cut"
    elif len(in_time) == n:  # everyone reported: the last one closes it
        kept, close, late = set(in_time), float(finish.max()) if n else float(deadline_s or 0.0), "cut"
    else:  # the deadline closes it
        kept, close, late = set(in_time), float(deadline_s), "dropped"  # type: ignore[arg-type]
    status = tuple("kept" if i in kept else late for i in range(n))
    late_idx = np.array([i for i in range(n) if i not in kept], dtype=np.int64)
    done = _fractions(parts[late_idx], close)  # (late, 3): download, compute, upload done at close

    def spent(j: int, amount: np.ndarray) -> int:
        return int(round(float(np.dot(done[:, j], np.asarray(amount, dtype=np.float64)[late_idx]))))

    return RoundTiming(clients, parts, status, close, spent(0, bytes_down), spent(2, bytes_up), spent(1, flops))


def _fractions(parts: np.ndarray, close: float) -> np.ndarray:
    """(n, 3): the share of download, compute and upload each client had done when the round closed."""
    start = parts[:, 0].copy()  # each phase starts when the previous one ends, after the latency
    out = np.zeros((len(parts), 3))
    for j in range(3):
        dur = parts[:, j + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(dur > 0, (close - start) / dur, (close >= start).astype(np.float64))
        out[:, j] = np.clip(frac, 0.0, 1.0)
        start = start + dur
    return out


def round_record(cohort: Cohort, timing: RoundTiming, clock_s: float) -> dict[str, Any]:
    """The round's ``sim/*`` keys for metrics.jsonl; ``clock_s`` is the clock after this round."""
    return {
        "sim/round_s": timing.round_s, "sim/clock_s": clock_s,
        "sim/eligible": cohort.eligible, "sim/online": cohort.online, "sim/sampled": len(cohort.sampled),
        "sim/kept": len(timing.kept), "sim/cut": len(timing.with_status("cut")),
        "sim/dropped": len(timing.with_status("dropped")),
        "sim/wasted_bytes_to_clients": timing.wasted_bytes_to_clients,
        "sim/wasted_bytes_from_clients": timing.wasted_bytes_from_clients,
        "sim/wasted_flops": timing.wasted_flops,
    }


def client_fields(devices: Devices, timing: RoundTiming) -> dict[int, dict[str, Any]]:
    """Per sampled client, the fields to add to its clients.jsonl row: device, simulated time, status."""
    return {c: {"device": devices.device[c], "sim_s": float(timing.finish_s[i]), "sim_status": timing.status[i]}
            for i, c in enumerate(timing.clients)}
