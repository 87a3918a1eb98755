"""Sweep files: a base config, a search space over dotted config keys, and how to search it.

A sweep YAML is read strictly and checked completely before Tune starts: every search-space
key and value is tried by building real :class:`ExperimentConfig` values, the metric must be
one the trainable reports, and the data plan of every sampled config is made (dataset, shard
sizes), so a typo fails in a second instead of after an hour of trials. No Ray here.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fedray.config import ConfigError, ExperimentConfig, apply_overrides, build, load_raw
from fedray.config.loader import merge, parse_yaml
from fedray.tune.bundles import TrialResources, check_plan
from fedray.tune.metrics import reported_metrics

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
SWEEP_KEYS = ("name", "base", "search_space", "metric", "mode", "num_samples", "max_concurrent_trials",
              "scheduler", "resources")
_MAX_CHECKED = 256  # configs built to validate a search space (all grid x choice combinations up to this)


class SweepError(ConfigError):
    """An invalid sweep file; the message names the file and the key."""


@dataclass(frozen=True)
class Dist:
    """One search-space dimension: ``grid``/``choice`` over values, ``uniform``/``loguniform`` over
    ``[low, high]``, ``randint`` over ``[low, high)`` (as ``tune.randint``)."""

    kind: str
    args: tuple[Any, ...]

    def probes(self) -> list[Any]:
        """Values to validate with: every listed value, or both ends of a range."""
        if self.kind in ("grid", "choice"):
            return list(self.args)
        low, high = self.args
        return [low, high - 1] if self.kind == "randint" else [low, high]

    def to_yaml(self) -> dict[str, Any]:
        return {self.kind: list(self.args)}


@dataclass(frozen=True)
class Scheduler:
    """Early stopping of bad trials on a per-round metric (ASHA over rounds)."""

    kind: str = "asha"
    grace_period: int = 1  # rounds every trial runs before it can be stopped
    reduction_factor: float = 2.0
    max_t: int | None = None  # None = the most rounds any checked config runs


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep."""

    name: str
    source: str  # the sweep file, for messages
    base: dict[str, Any] = field(repr=False)  # the experiment config as a plain dict (preset and overrides applied)
    search_space: dict[str, Dist] = field(default_factory=dict)
    metric: str = "eval/i2t_r1"
    mode: str = "max"
    num_samples: int = 1
    max_concurrent_trials: int = 2
    scheduler: Scheduler | None = None
    resources: TrialResources = field(default_factory=TrialResources)
    checked: tuple[ExperimentConfig, ...] = field(default=(), repr=False, compare=False)  # configs built while checking

    def to_yaml(self) -> str:
        """The resolved sweep (base fully expanded) as YAML that :func:`parse_sweep` reads back.
        Storage credentials are left out, as in run directories (they come from the env vars)."""
        base = copy.deepcopy(self.base)
        storage = (base.get("data") or {}).get("storage") or {}
        for secret in ("key", "secret"):
            if secret in storage:
                storage[secret] = None
        out = {"name": self.name, "base": {"config": base}, "metric": self.metric, "mode": self.mode,
               "num_samples": self.num_samples, "max_concurrent_trials": self.max_concurrent_trials,
               "search_space": {k: d.to_yaml() for k, d in self.search_space.items()},
               "scheduler": None if self.scheduler is None else vars(self.scheduler),
               "resources": vars(self.resources)}
        return yaml.safe_dump(out, sort_keys=False)


def trial_config(base: dict[str, Any], params: dict[str, Any], name: str | None = None) -> ExperimentConfig:
    """The experiment config of one trial: ``base`` with each dotted search key set to its value."""
    raw = with_values(base, params)
    if name is not None:
        raw["name"] = name
    return build(raw)


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a raw config, through the ``--set`` parser (values written as flow YAML,
    which reads back exactly: JSON would give ``1e-05``, a string to YAML 1.1)."""
    flow = {k: yaml.safe_dump(v, default_flow_style=True, width=10**9).removesuffix("\n...\n").strip()
            for k, v in values.items()}
    return apply_overrides(raw, [f"{k}={text}" for k, text in flow.items()])


def load_sweep(path: str, sets: list[str] | None = None) -> SweepSpec:
    """Read and fully validate a sweep file; ``sets`` are ``--set`` overrides (see :func:`apply_sets`)."""
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"sweep file {path}: not found")
    try:
        data = parse_yaml(p.read_text(), f"sweep {path}")  # duplicate keys are errors, 1e-3 is a number
    except ConfigError as err:
        raise SweepError(str(err)) from None
    if not isinstance(data, dict):
        raise SweepError(f"sweep {path}: expected a mapping at the top level")
    data = apply_sets(data, sets or [], path)
    return parse_sweep(data, path, root=p.parent)


def apply_sets(data: dict[str, Any], sets: list[str], where: str) -> dict[str, Any]:
    """``--set`` for sweeps: sweep keys (``num_samples=4``, ``base.preset=tiny``, ``scheduler.grace_period=2``,
    ``search_space.train.method={grid: [lw, prog]}``) change the sweep; any other key overrides the base config."""
    data = copy.deepcopy(data)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SweepError(f"sweep {where}: --set {item!r}: expected KEY=VALUE")
        value = parse_yaml(text, f"sweep {where}: --set {item!r}") if text.strip() else None
        head, _, rest = key.partition(".")
        if head == "search_space" and rest:
            data.setdefault("search_space", {})[rest] = value
        elif head in ("base", "scheduler", "resources") and rest:
            section = data.get(head) or {}
            if not isinstance(section, dict):
                raise SweepError(f"sweep {where}: --set {item!r}: '{head}' is not a section")
            section[rest] = value
            data[head] = section
        elif head in SWEEP_KEYS and not rest:
            data[head] = value
        else:  # an experiment config key: goes to base.overrides
            base = data.setdefault("base", {}) or {}
            base.setdefault("overrides", {})[key] = value
            data["base"] = base
    return data


def parse_sweep(data: dict[str, Any], source: str, root: Path = Path(".")) -> SweepSpec:
    """Validate a sweep mapping into a :class:`SweepSpec` (see the module docstring for what is checked)."""

    def fail(msg: str) -> SweepError:
        return SweepError(f"sweep {source}: {msg}")

    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise fail(f"unknown key '{unknown[0]}'; valid keys: {', '.join(SWEEP_KEYS)}")
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str) or "/" in name:
        raise fail(f"'name' must be a name without '/', got {name!r}")
    base = _base(data.get("base") or {}, root, fail)
    try:
        build(base)
    except ConfigError as err:
        raise fail(f"base: {err}") from None
    space = _space(data.get("search_space") or {}, fail)
    mode = data.get("mode", "max")
    if mode not in ("min", "max"):
        raise fail(f"'mode' must be 'min' or 'max', got {mode!r}")
    num_samples = _positive_int(data.get("num_samples", 1), "num_samples", fail)
    concurrent = _positive_int(data.get("max_concurrent_trials", 2), "max_concurrent_trials", fail)
    checked = _check_space(base, space, fail)
    metric = data.get("metric", "eval/i2t_r1")
    for cfg in checked:
        names = reported_metrics(cfg)
        if metric not in names:
            raise fail(f"metric {metric!r} is never reported by the trainable (method {cfg.train.method}); "
                       f"it reports: {', '.join(sorted(names))}")
    scheduler = _scheduler(data.get("scheduler"), checked, fail)
    resources = _resources(data.get("resources") or {}, fail)
    return SweepSpec(name, source, base, space, metric, mode, num_samples, concurrent, scheduler, resources,
                     tuple(checked))


def _base(section: Any, root: Path, fail: Any) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise fail("'base' must be a mapping with 'preset' or 'config', and optional 'overrides'")
    unknown = sorted(set(section) - {"preset", "config", "overrides"})
    if unknown:
        raise fail(f"unknown key 'base.{unknown[0]}'; valid keys: preset, config, overrides")
    config, preset = section.get("config"), section.get("preset")
    try:
        if isinstance(config, dict):  # an inline, already resolved config (what sweep.yaml stores)
            raw = merge(load_raw(preset=preset) if preset else {}, config)
        else:
            path = None if config is None else str(root / config if not Path(config).is_absolute() else config)
            raw = load_raw(path, preset if preset else (None if path else "default"))
        overrides = section.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise fail("'base.overrides' must be a mapping of dotted config keys to values")
        return with_values(raw, overrides)
    except SweepError:
        raise
    except ConfigError as err:
        raise fail(f"base: {err}") from None


def _space(section: Any, fail: Any) -> dict[str, Dist]:
    if not isinstance(section, dict):
        raise fail("'search_space' must map dotted config keys to one distribution each")
    space = {}
    for key, spec in section.items():
        where = f"search_space '{key}'"
        if not isinstance(spec, dict) or len(spec) != 1:
            raise fail(f"{where}: expected one distribution, e.g. {{grid: [a, b]}}; one of {', '.join(DISTRIBUTIONS)}")
        ((kind, args),) = spec.items()
        if kind not in DISTRIBUTIONS:
            raise fail(f"{where}: unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}")
        if not isinstance(args, list):
            raise fail(f"{where}: {kind} takes a list, got {args!r}")
        if kind in ("grid", "choice"):
            if not args:
                raise fail(f"{where}: empty {kind}; list at least one value")
        else:
            args = _range(kind, args, lambda m: fail(f"{where}: {m}"))
        space[str(key)] = Dist(kind, tuple(args))
    return space


def _range(kind: str, args: list[Any], fail: Any) -> list[Any]:
    if len(args) != 2:
        raise fail(f"{kind} takes [low, high], got {args!r}")
    try:  # YAML 1.1 reads 1e-4 as a string: accept it as the number it plainly is
        low, high = (float(a) if isinstance(a, str) else a for a in args)
    except ValueError:
        raise fail(f"{kind} bounds must be numbers, got {args!r}") from None
    if any(isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) for a in (low, high)):
        raise fail(f"{kind} bounds must be finite numbers, got {args!r}")
    if kind == "randint" and not (float(low).is_integer() and float(high).is_integer()):
        raise fail(f"randint bounds must be integers, got {args!r}")
    if not low < high:
        raise fail(f"{kind} needs low < high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise fail(f"loguniform needs low > 0, got {args!r}")
    return [int(low), int(high)] if kind == "randint" else [float(low), float(high)]


def _check_space(base: dict[str, Any], space: dict[str, Dist], fail: Any) -> list[ExperimentConfig]:
    """Build configs from the search space: each key alone at every probe value, then every combination of
    grid/choice values (ranges at their low end) up to ``_MAX_CHECKED``. Also plans each distinct config."""

    def make(values: dict[str, Any]) -> ExperimentConfig:
        try:
            cfg = trial_config(base, values)
            check_plan(cfg)  # plans the run: dataset, partition, shard sizes
            return cfg
        except (ValueError, OSError) as err:  # config errors, and data errors found while planning
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the base config"
            raise fail(f"search_space with {shown}: {err}") from None

    configs = []
    for key, dist in space.items():
        for value in dist.probes():
            try:
                trial_config(base, {key: value})
            except ConfigError as err:
                raise fail(f"search_space '{key}' = {value!r}: {err}") from None
    lists = [d.probes() if d.kind in ("grid", "choice") else d.probes()[:1] for d in space.values()]
    for combo in itertools.islice(itertools.product(*lists), _MAX_CHECKED):
        configs.append(make(dict(zip(space, combo))))
    return configs


def _positive_int(value: Any, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"'{key}' must be a positive integer, got {value!r}")
    return value


def _scheduler(section: Any, checked: list[ExperimentConfig], fail: Any) -> Scheduler | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise fail("'scheduler' must be a mapping like {kind: asha, grace_period: 1}")
    unknown = sorted(set(section) - {"kind", "grace_period", "reduction_factor", "max_t"})
    if unknown:
        raise fail(f"unknown key 'scheduler.{unknown[0]}'; valid keys: kind, grace_period, reduction_factor, max_t")
    sched = Scheduler(**section)
    if sched.kind != "asha":
        raise fail(f"unknown scheduler {sched.kind!r}; supported: asha")
    _positive_int(sched.grace_period, "scheduler.grace_period", fail)
    if not isinstance(sched.reduction_factor, (int, float)) or sched.reduction_factor <= 1:
        raise fail(f"'scheduler.reduction_factor' must be > 1, got {sched.reduction_factor!r}")
    if sched.max_t is None:
        from fedray.schedules import build_schedule

        most = max(sum(s.rounds for s in build_schedule(c)) for c in checked)
        sched = replace(sched, max_t=most)
    _positive_int(sched.max_t, "scheduler.max_t", fail)
    return sched


def _resources(section: Any, fail: Any) -> TrialResources:
    if not isinstance(section, dict):
        raise fail("'resources' must be a mapping")
    unknown = sorted(set(section) - {"trial_cpus", "client_cpus", "client_gpus"})
    if unknown:
        raise fail(f"unknown key 'resources.{unknown[0]}'; valid keys: trial_cpus, client_cpus, client_gpus")
    res = TrialResources(**section)
    for key in ("trial_cpus", "client_cpus"):
        v = getattr(res, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise fail(f"'resources.{key}' must be a number > 0, got {v!r}")
    g = res.client_gpus
    if g != "auto" and (isinstance(g, bool) or not isinstance(g, (int, float)) or g < 0):
        raise fail(f"'resources.client_gpus' must be 'auto' or a number >= 0, got {g!r}")
    return res
