"""Stage values and the rules every method shares: round allocation, blocks per stage, stale frozen groups.

No fedray imports at run time: the config validates method names against this package (``config -> schedules``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedray.config import TowerConfig


@dataclass(frozen=True)
class StageSpec:
    """One stage: which groups are present and trainable, for how many rounds, at which rates."""

    index: int  # 0-based
    rounds: int
    depths: dict[str, int]  # present blocks per tower
    present: frozenset[str]  # every layer group that exists at this stage
    trainable: frozenset[str]  # trained on clients and exchanged with the server
    lrs: dict[str, float]  # effective learning rate per lr group (tower name or "head")

    @property
    def frozen(self) -> frozenset[str]:
        """Present groups that stay on the client: the frozen prefix."""
        return self.present - self.trainable

    @property
    def exchanged(self) -> frozenset[str]:
        """Only trainable tensors travel."""
        return self.trainable


def allocate_rounds(rounds: list[int] | str, stages: int, total: int | None) -> list[int]:
    """Rounds per stage: an explicit list, ``uniform``, or ``skewed`` (last-heavy, as in the paper) of ``total``.

    ``skewed`` leaves the first floor(S/2) stages at 0 and weights the rest 1, 3, 5, ...;
    S=6 and 90 rounds give the paper's 0,0,0,10,30,50. Remainders go to the latest stages.
    """
    if isinstance(rounds, list):
        return list(rounds)
    if total is None:
        raise ValueError(f"the {rounds} allocation needs a total number of rounds")
    if rounds == "uniform":
        weights = [1.0] * stages
    else:
        zero = stages // 2
        weights = [0.0] * zero + [2.0 * i + 1 for i in range(stages - zero)]
    exact = [total * w / sum(weights) for w in weights]
    out = [math.floor(x) for x in exact]
    for i in sorted(range(stages), key=lambda i: (exact[i] - out[i], i), reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def blocks_per_stage(tower: TowerConfig, stages: int) -> int:
    """Blocks a tower appends per stage: explicit, or spread evenly over the stages."""
    return tower.blocks_per_stage or math.ceil(tower.num_layers / stages)


def stale_groups(schedule: Sequence[StageSpec], synced: int, stage: int) -> frozenset[str]:
    """Frozen groups of stage ``stage`` whose values changed since the start of stage ``synced``.

    The one prefix-sync rule: a client that last took part in stage ``synced`` holds every group as it was when
    that stage began (it has seen neither that stage's aggregates nor later ones); training changes a stage's
    trainable groups only in a stage that has rounds. The server sends these groups to the client once, before
    its first round of ``stage``; ``fedray resources`` counts the same bytes.
    """
    changed: set[str] = set()
    for spec in schedule[synced:stage]:
        if spec.rounds:
            changed |= spec.trainable
    return frozenset(changed) & schedule[stage].frozen
