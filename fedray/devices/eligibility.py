"""Which clients can train which stage: the device's memory budget against the stage's peak training memory.

The peak of a stage is the ledger's CPU memory model (``StepCost.memory_bytes``: present parameters and buffers,
gradients, AdamW state, saved activations) at ``train.batch_size`` — the figure ``fedray resources`` prints in its
``peak MiB`` column — computed once per run by :func:`fedray.devices.costs.stage_costs`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedray.config.schema import ConfigError
from fedray.devices.profiles import MIB, Devices


class FleetError(ConfigError):
    """The fleet cannot run the schedule (no device holds a stage, or ``strict`` and some client cannot);
    raised before any compute, so the CLI exits with code 2."""


def eligible(devices: Devices, peak_bytes: int) -> np.ndarray:
    """Per client: can its device hold a stage whose peak training memory is ``peak_bytes``?"""
    return devices.memory_bytes >= peak_bytes


def check_fleet(devices: Devices, peaks: dict[int, int], policy: str, method: str, batch_size: int
                ) -> dict[int, np.ndarray]:
    """Eligibility per stage (index -> bool per client) for the stages with rounds (the keys of ``peaks``).

    Raises FleetError when no device can hold a stage with rounds (at any stage: a stage nobody can train would
    leave its blocks untrained while the run looks complete), or, with ``policy='strict'``, when any client
    of the population cannot hold one.
    """
    out = {}
    for index in sorted(peaks):
        peak, mask = peaks[index], eligible(devices, peaks[index])
        if not mask.any():
            best = int(np.argmax(devices.memory_bytes))
            raise FleetError(
                f"fleet ({devices.source}): no device can train stage {index + 1} of {method}: it needs "
                f"{peak / MIB:.2f} MiB of training memory at train.batch_size={batch_size} (the ledger's peak, as "
                f"`fedray resources` prints it) and the largest budget is {devices.memory_bytes[best] / MIB:.2f} MiB "
                f"({devices.device[best]}); give the devices more memory, lower the batch size or use another method")
        if policy == "strict" and not mask.all():
            bad = np.flatnonzero(~mask)
            shown = ", ".join(f"{c} ({devices.device[c]}, {devices.memory_bytes[c] / MIB:.2f} MiB)" for c in bad[:5])
            raise FleetError(
                f"fleet.policy=strict: {bad.size} client(s) cannot train stage {index + 1} of {method}, which needs "
                f"{peak / MIB:.2f} MiB at train.batch_size={batch_size}: {shown}{', ...' if bad.size > 5 else ''}; "
                "use fleet.policy=skip to leave them out of the stages they cannot hold")
        out[index] = mask
    return out


def eligibility_report(devices: Devices, peaks: dict[int, int], masks: dict[int, np.ndarray]) -> list[dict[str, Any]]:
    """JSON-ready, per stage with rounds: its peak and how many clients (per device class) can train it."""
    names = np.array(devices.device)
    return [{"stage": index + 1, "peak_memory_mib": peaks[index] / MIB, "eligible": int(masks[index].sum()),
             "clients": len(devices),
             "by_device": {str(n): int((masks[index] & (names == n)).sum()) for n in dict.fromkeys(devices.device)}}
            for index in sorted(peaks)]
