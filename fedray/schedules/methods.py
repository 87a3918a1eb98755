"""The method registry: a new method is one :class:`Method` here (name, label, stage rule, schedule builder).

Config validation, the CLI, ``fedray compare``, ``fedray resources``, the Tune report and plots all read it.

fedmml: one stage of ``sum(rounds)`` rounds, the whole model present, trained and exchanged.
lw:     stage s appends the next blocks; only they, the final LayerNorms and the heads train
        (stage 1 also trains the embeddings); earlier groups are frozen and stay on the client.
prog:   the same growth, but every present group trains and is exchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedray.schedules.spec import StageSpec, allocate_rounds, blocks_per_stage

if TYPE_CHECKING:
    from fedray.config import ExperimentConfig


@dataclass(frozen=True)
class Method:
    """A federated training method: how it names itself and which stages it runs."""

    name: str  # the value of train.method
    label: str  # how reports and plots name it
    colour: str  # its colour in plots
    staged: bool  # False: one stage whatever train.stages says
    build: Callable[[ExperimentConfig], list[StageSpec]]  # the stages for a config

    def stage_count(self, stages: int) -> int:
        """Stages a run of this method has when the config asks for ``stages``."""
        return stages if self.staged else 1


def _groups(towers: dict[str, bool], depths: dict[str, int], start: dict[str, int], embed: bool,
            fusion: bool) -> set[str]:
    out = {"fusion"} if fusion else set()  # the supervised fusion + prediction head: like the projection heads
    for name, has_norm in towers.items():
        out |= {f"{name}.block.{i}" for i in range(start[name], depths[name])}
        out |= {f"{name}.head"} | ({f"{name}.final_norm"} if has_norm else set()) | ({f"{name}.embed"} if embed else set())
    return out


def _setup(cfg: ExperimentConfig) -> tuple[dict[str, bool], dict[str, int], list[int], Callable[[int], dict], bool]:
    """Towers (name -> has a final norm), full depths, rounds per stage, rates per stage, whether a fusion head."""
    from fedray.config.families import FAMILIES  # at call time: importing fedray.config imports this package

    t = cfg.train
    towers = {name: FAMILIES[tw.arch].final_norm for name, tw in cfg.model.towers.items()}
    full = {name: tw.num_layers for name, tw in cfg.model.towers.items()}
    scale = t.batch_size / 256 if t.lr_batch_scaling else 1.0

    def lrs(stage: int) -> dict[str, float]:
        return {g: (v[stage] if isinstance(v, list) else v) * scale for g, v in t.lr.items()}

    rounds = allocate_rounds(t.rounds, t.stages, t.total_rounds)
    return towers, full, rounds, lrs, cfg.model.task == "classification"


def _end_to_end(cfg: ExperimentConfig) -> list[StageSpec]:
    towers, full, rounds, lrs, fuse = _setup(cfg)
    groups = frozenset(_groups(towers, full, {n: 0 for n in towers}, embed=True, fusion=fuse))
    return [StageSpec(0, sum(rounds), full, groups, groups, lrs(cfg.train.stages - 1))]


def _grown(cfg: ExperimentConfig, frozen_prefix: bool) -> list[StageSpec]:
    towers, full, rounds, lrs, fuse = _setup(cfg)
    specs, prev = [], {name: 0 for name in towers}
    zero = dict(prev)
    for s in range(cfg.train.stages):
        depths = {n: min(full[n], (s + 1) * blocks_per_stage(cfg.model.towers[n], cfg.train.stages)) for n in towers}
        present = frozenset(_groups(towers, depths, zero, embed=True, fusion=fuse))
        if frozen_prefix:  # lw: the appended blocks, final norms and heads; embeddings only in the first stage
            trainable = frozenset(_groups(towers, depths, prev, embed=(s == 0), fusion=fuse))
        else:
            trainable = present
        specs.append(StageSpec(s, rounds[s], depths, present, trainable, lrs(s)))
        prev = depths
    return specs


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("fedmml", "FedMML", "tab:blue", staged=False, build=_end_to_end),
    Method("lw", "LW-FedMML", "tab:orange", staged=True, build=lambda cfg: _grown(cfg, frozen_prefix=True)),
    Method("prog", "Prog-FedMML", "tab:green", staged=True, build=lambda cfg: _grown(cfg, frozen_prefix=False)),
)}
REFERENCE = "fedmml"  # resource ratios are this method's figure divided by another's ("2.3x less" reads 2.3)


def method(name: str) -> Method:
    """The registered method ``name`` (a KeyError names the known ones)."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def build_schedule(cfg: ExperimentConfig) -> list[StageSpec]:
    """The stages of ``cfg.train.method`` for this model."""
    return method(cfg.train.method).build(cfg)
