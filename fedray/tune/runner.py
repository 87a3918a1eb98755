"""``fedray tune``: a validated sweep run as a ``tune.Tuner`` in a fresh sweep directory, then reported."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from fedray.backend import ray_session
from fedray.backend.session import verbose
from fedray.config import build
from fedray.rundir import OutputError, RunDir
from fedray.progress import Progress
from fedray.tune.progress import SweepProgress
from fedray.tune.report import write_report
from fedray.tune.bundles import client_gpus, fit_concurrency, num_hosts, trial_bundles
from fedray.tune.spec import Dist, SweepSpec, parse_sweep, trial_config
from fedray.tune.trainable import fedray_trial

log = logging.getLogger("fedray")
SWEEP_FILE = "sweep.yaml"  # the resolved sweep, so --resume and reports need nothing else
TUNE_DIR = "tune"  # Tune's experiment directory inside the sweep directory


@dataclass
class SweepOutcome:
    """Where a sweep went and how its trials ended."""

    sweep_dir: str
    concurrency: int
    trials: int
    errors: list[str]
    unfinished: int
    wall_s: float


def sweep_dir_for(spec: SweepSpec, out: str | None, resume: bool) -> Path:
    """A fresh sweep directory, or with ``resume`` the given / latest one of this sweep."""
    if out is not None and "://" in out:
        raise OutputError(f"--out {out}: sweep directories are local (Tune's experiment state and the plots); "
                          "the trials' data may still come from s3://")
    if not resume:
        return RunDir.create(out, spec.name, root="runs/sweeps").path
    if out is None:
        found = sorted(p for p in Path("runs/sweeps").glob(f"{spec.name}-*") if (p / TUNE_DIR).is_dir())
        if not found:
            raise OutputError(f"--resume: no earlier sweep named {spec.name} under runs/sweeps; pass --out DIR")
        return found[-1]
    path = Path(out)
    if not tune.Tuner.can_restore(str((path / TUNE_DIR).resolve())):
        raise OutputError(f"--resume --out {out}: no interrupted sweep there (expected {path / TUNE_DIR})")
    return path


def run_sweep(spec: SweepSpec, out: str | None = None, *, resume: bool = False, address: str | None = None,
              display: Progress | None = None) -> SweepOutcome:
    """Run (or resume) ``spec`` on Ray Tune, then write ``trials.csv``/``trials.md`` and the plots.

    ``display`` shows trials finished of how many and each trial's rounds (Tune's own tables are off).
    """
    root = sweep_dir_for(spec, out, resume).resolve()
    if resume:  # the sweep as it was started, not as the file reads now
        spec = parse_sweep(yaml.safe_load((root / SWEEP_FILE).read_text()), str(root / SWEEP_FILE))
    else:
        (root / SWEEP_FILE).write_text(spec.to_yaml())
    base = _absolute_paths(spec.base)
    start = time.perf_counter()
    # Tune creates grid trials lazily: an interrupt can come before some exist at all.
    grid_trials = spec.num_samples * math.prod(len(d.args) for d in spec.search_space.values() if d.kind == "grid")
    with ray_session(build(base).runtime, address):
        cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
        concurrency = _concurrency(spec, cluster)
        callbacks = [SweepProgress(display, spec, base, grid_trials, concurrency)] if display is not None else []
        trainable = tune.with_resources(
            tune.with_parameters(fedray_trial, base=base, sweep_dir=str(root), sweep_name=spec.name),
            resources=lambda params: tune.PlacementGroupFactory(_bundles(spec, base, params, cluster, concurrency)),
        )
        if resume:
            tuner = tune.Tuner.restore(str(root / TUNE_DIR), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space=param_space(spec.search_space),
                               tune_config=_tune_config(spec, concurrency), run_config=_run_config(root, callbacks))
        with _quiet_tune():
            grid = tuner.fit()
    errors = [f"{r.path}: {r.error}" for r in grid if r.error is not None]
    write_report([str(root)], str(root), metric=spec.metric)
    # Trial states as Tune saved them (the in-memory grid counts an interrupted, pending trial as ended).
    states = [t.status for t in tune.ExperimentAnalysis(str(root / TUNE_DIR)).trials]
    expected = max(len(states), grid_trials)
    unfinished = expected - sum(s in ("TERMINATED", "ERROR") for s in states)
    return SweepOutcome(str(root), concurrency, expected, errors, unfinished, time.perf_counter() - start)


def param_space(space: dict[str, Dist]) -> dict[str, Any]:
    """Tune domains, keyed by the dotted config keys (the trainable sets them on the base config)."""
    listed = {"grid": tune.grid_search, "choice": tune.choice}
    ranged = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    return {key: listed[d.kind](list(d.args)) if d.kind in listed else ranged[d.kind](*d.args)
            for key, d in space.items()}


def _bundles(spec: SweepSpec, base: dict[str, Any], params: dict[str, Any], cluster: dict[str, float],
             concurrency: int) -> list[dict[str, float]]:
    cfg = trial_config(base, params)
    hosts = num_hosts(cfg, cluster)  # auto packing for this cluster, not for the machine that submits the sweep
    return trial_bundles(cfg, spec.resources, hosts, client_gpus(spec.resources, cluster, concurrency, hosts))


def _concurrency(spec: SweepSpec, cluster: dict[str, float]) -> int:
    """The requested concurrency, lowered (with a warning) to what the cluster holds of the largest trial."""
    per_trial: dict[str, float] = {}
    for cfg in spec.checked or (build(spec.base),):
        hosts = num_hosts(cfg, cluster)
        need: dict[str, float] = {}
        gpus = client_gpus(spec.resources, cluster, spec.max_concurrent_trials, hosts)  # auto shares never limit
        for b in trial_bundles(cfg, spec.resources, hosts, gpus):
            for r, v in b.items():
                need[r] = need.get(r, 0.0) + v
        per_trial = {r: max(per_trial.get(r, 0.0), v) for r, v in need.items()}
    concurrency, warning = fit_concurrency(spec.max_concurrent_trials, per_trial, cluster)
    if warning:
        log.warning("sweep %s: %s", spec.name, warning)
    return concurrency


def _tune_config(spec: SweepSpec, concurrency: int) -> tune.TuneConfig:
    scheduler = None
    if spec.scheduler is not None:
        s = spec.scheduler
        scheduler = ASHAScheduler(time_attr="round", max_t=s.max_t, grace_period=s.grace_period,
                                  reduction_factor=s.reduction_factor)
    return tune.TuneConfig(metric=spec.metric, mode=spec.mode, num_samples=spec.num_samples,
                           max_concurrent_trials=concurrency, scheduler=scheduler,
                           trial_dirname_creator=lambda trial: trial.trial_id)


def _run_config(root: Path, callbacks: list[tune.Callback] | None = None) -> tune.RunConfig:
    # No status tables unless -v (a 2-trial sweep printed 436 lines): fedray's SweepProgress reports instead.
    return tune.RunConfig(name=TUNE_DIR, storage_path=str(root), verbose=1 if verbose() else 0,
                          callbacks=callbacks, checkpoint_config=tune.CheckpointConfig(num_to_keep=1))


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's own output off unless ``-v``: the experiment banner and status tables (the legacy reporter at
    verbose=0 prints none) and the per-round "snapshotting triggered multiple times" warning, which every
    trial reporting a checkpoint each round sets off on a local disk where snapshots are cheap."""
    quiet = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    saved = {k: os.environ.get(k) for k in quiet}
    if not verbose():
        os.environ.update({k: v for k, v in quiet.items() if saved[k] is None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def _absolute_paths(base: dict[str, Any]) -> dict[str, Any]:
    """Local paths made absolute: Tune runs each trial in its own working directory."""
    out = yaml.safe_load(yaml.safe_dump(base))
    data = out.get("data", {})
    if isinstance(data.get("source"), str) and Path(data["source"]).exists():
        data["source"] = str(Path(data["source"]).resolve())
    for tower in (out.get("model", {}).get("towers") or {}).values():
        if isinstance(tower, dict) and isinstance(tower.get("checkpoint"), str) and Path(tower["checkpoint"]).exists():
            tower["checkpoint"] = str(Path(tower["checkpoint"]).resolve())
    return out
