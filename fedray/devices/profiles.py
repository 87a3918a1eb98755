"""Which device each client has: classes with shares, a packaged preset, or a trace with one row per client.

Everything here is decided once, on the driver, before any compute, from ``fleet`` and ``train.seed``:
classes get counts by the largest-remainder method, then a seeded permutation deals them to clients;
a trace maps row i to client i. The result is one :class:`Devices` value in SI units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.config.schema import DeviceClassConfig, FleetConfig, StorageConfig
from fedray.devices.catalog import fleet_preset

# Independent random streams under train.seed (SeedSequence entropy [seed, stream, ...]), so that adding a
# fleet never shifts the partition or the cohort sampler, and each draw can be recomputed from its key alone.
ASSIGN_STREAM = 0xDE71CE  # which client gets which device class
AVAILABILITY_STREAM = 0xA7A11  # per round: which clients are online (see clock.online)

MIB = 2**20


@dataclass(frozen=True, eq=False)
class Devices:
    """Every client's device as arrays indexed by client id, in SI units (bytes, FLOP/s, bytes/s, seconds)."""

    device: tuple[str, ...]  # device (class) name per client
    memory_bytes: np.ndarray  # training-memory budget
    flops_per_s: np.ndarray  # effective training throughput
    down_bytes_per_s: np.ndarray  # server -> client
    up_bytes_per_s: np.ndarray  # client -> server
    availability: np.ndarray  # probability of being online in a round
    latency_s: np.ndarray  # fixed per-round overhead
    source: str  # "preset phones", "classes" or "trace PATH": where the profiles came from

    def __len__(self) -> int:
        return len(self.device)

    def report(self) -> dict[str, Any]:
        """JSON-ready: the source, clients per device class, and every client's profile (partition.json)."""
        names, counts = np.unique(np.array(self.device), return_counts=True)
        return {
            "source": self.source,
            "counts": {str(n): int(c) for n, c in zip(names, counts)},
            "clients": [{"client": i, "device": self.device[i], **_profile(self, i)} for i in range(len(self))],
        }


def _profile(d: Devices, i: int) -> dict[str, float]:
    """Client ``i``'s profile in the config's units (MiB, GFLOP/s, Mbit/s)."""
    return {"memory_mib": float(d.memory_bytes[i] / MIB), "gflops": float(d.flops_per_s[i] / 1e9),
            "downlink_mbps": float(d.down_bytes_per_s[i] * 8 / 1e6), "uplink_mbps": float(d.up_bytes_per_s[i] * 8 / 1e6),
            "availability": float(d.availability[i]), "latency_s": float(d.latency_s[i])}


def from_profiles(names: list[str], profiles: list[DeviceClassConfig], source: str) -> Devices:
    """Devices from one config-unit profile per client (MiB, GFLOP/s, Mbit/s)."""
    col = lambda attr, scale: np.array([float(getattr(p, attr)) * scale for p in profiles], dtype=np.float64)  # noqa: E731
    return Devices(tuple(names), col("memory_mib", MIB), col("gflops", 1e9), col("downlink_mbps", 1e6 / 8),
                   col("uplink_mbps", 1e6 / 8), col("availability", 1.0), col("latency_s", 1.0), source)


def largest_remainder(shares: list[float], n: int) -> list[int]:
    """Integer counts summing to ``n``, proportional to ``shares``: floors, then one more each to the largest
    fractional parts (ties to the earlier class), so the counts never depend on a random draw."""
    quotas = [s * n for s in shares]
    counts = [int(np.floor(q)) for q in quotas]
    order = sorted(range(len(shares)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_classes(shares: list[float], n: int, seed: int) -> np.ndarray:
    """Class index per client: ``largest_remainder`` counts dealt by a seeded permutation."""
    labels = np.repeat(np.arange(len(shares)), largest_remainder(shares, n))
    return np.random.default_rng([seed, ASSIGN_STREAM]).permutation(labels)


def build_devices(fleet: FleetConfig, num_clients: int, seed: int, storage: StorageConfig | None = None
                  ) -> Devices | None:
    """The population's devices, or None when the config has no fleet (identical unlimited clients, no clock).

    Raises ConfigError (a trace that is missing, malformed, or shorter than the population) before any compute.
    """
    if not fleet.enabled:
        return None
    if fleet.trace:
        from fedray.devices.trace import read_trace  # pyarrow readers only when a trace is used

        names, cols = read_trace(fleet.trace, num_clients, storage)
        return Devices(tuple(names), cols["memory_mib"] * MIB, cols["gflops"] * 1e9, cols["downlink_mbps"] * 1e6 / 8,
                       cols["uplink_mbps"] * 1e6 / 8, cols["availability"], cols["latency_s"], f"trace {fleet.trace}")
    classes, source = fleet.classes, "classes"
    if fleet.preset:
        _, classes = fleet_preset(fleet.preset)
        source = f"preset {fleet.preset}"
    names = list(classes)
    of = assign_classes([float(classes[n].share or 0.0) for n in names], num_clients, seed)
    return from_profiles([names[k] for k in of], [classes[names[k]] for k in of], source)
