"""Schedules are data: each method yields a list of frozen ``StageSpec`` values that one loop runs.

fedmml: one stage of ``sum(rounds)`` rounds, the whole model present, trained and exchanged.
lw:     stage s appends the next blocks; only they, the final LayerNorms and the heads train
        (stage 1 also trains the embeddings); earlier groups are frozen and stay on the client.
prog:   the same growth, but every present group trains and is exchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedray.config import ExperimentConfig, blocks_per_stage
from fedray.config.families import FAMILIES


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


def allocate_rounds(rounds: list[int] | str, stages: int, total: int) -> list[int]:
    """Rounds per stage: an explicit list, ``uniform``, or ``skewed`` (last-heavy, as in the paper).

    ``skewed`` leaves the first floor(S/2) stages at 0 and weights the rest 1, 3, 5, ...;
    S=6 and 90 rounds give the paper's 0,0,0,10,30,50. Remainders go to the latest stages.
    """
    if isinstance(rounds, list):
        return list(rounds)
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


def _groups(towers: dict[str, tuple[int, bool]], depths: dict[str, int], start: dict[str, int], embed: bool,
            fusion: bool = False) -> set[str]:
    out = {"fusion"} if fusion else set()  # the supervised fusion + prediction head: like the projection heads
    for name, (_, has_norm) in towers.items():
        out |= {f"{name}.block.{i}" for i in range(start[name], depths[name])}
        out |= {f"{name}.head"} | ({f"{name}.final_norm"} if has_norm else set()) | ({f"{name}.embed"} if embed else set())
    return out


def build_schedule(cfg: ExperimentConfig) -> list[StageSpec]:
    """The stages of ``cfg.train.method`` for this model."""
    t = cfg.train
    towers = {name: (tw.num_layers, FAMILIES[tw.arch].final_norm) for name, tw in cfg.model.towers.items()}
    scale = t.batch_size / 256 if t.lr_batch_scaling else 1.0

    def lrs(stage: int) -> dict[str, float]:
        return {g: (v[stage] if isinstance(v, list) else v) * scale for g, v in t.lr.items()}

    rounds = allocate_rounds(t.rounds, t.stages, t.total_rounds)
    full = {name: layers for name, (layers, _) in towers.items()}
    fuse = cfg.model.task == "classification"
    if t.method == "fedmml":
        zero = {name: 0 for name in towers}
        groups = frozenset(_groups(towers, full, zero, embed=True, fusion=fuse))
        return [StageSpec(0, sum(rounds), full, groups, groups, lrs(t.stages - 1))]

    specs, prev = [], {name: 0 for name in towers}
    zero = dict(prev)
    for s in range(t.stages):
        depths = {n: min(full[n], (s + 1) * blocks_per_stage(cfg.model.towers[n], t.stages)) for n in towers}
        present = frozenset(_groups(towers, depths, zero, embed=True, fusion=fuse))
        if t.method == "prog":
            trainable = present
        else:  # lw: the appended blocks, final norms and heads; embeddings only in the first stage
            trainable = frozenset(_groups(towers, depths, prev, embed=(s == 0), fusion=fuse))
        specs.append(StageSpec(s, rounds[s], depths, present, trainable, lrs(s)))
        prev = depths
    return specs
