"""Sizing trials: placement-group bundles per trial and how many trials the cluster holds. No Ray here.

A trial reserves everything it will use before it starts: one bundle for the Tune trainable, one for
the server actor, one per client actor (the server's shaped like a client's). Actors created inside the trial
land in these bundles, so concurrent trials never wait on each other's actors (PLATFORM.md, "Ray Tune with
actors inside a trial"). ``clients_per_actor: auto`` is resolved here, for the cluster the sweep runs on; the
trial then packs for the client bundles it was given.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, replace

import yaml

from fedray.config import ExperimentConfig, build, dump_yaml

log = logging.getLogger("fedray")


@dataclass(frozen=True)
class TrialResources:
    """What each trial reserves up front (bundle sizes of its placement group)."""

    trial_cpus: float = 0.25  # the Tune trainable (it only streams records)
    client_cpus: float = 0.25  # per client actor; the server actor gets runtime.server_cpus
    client_gpus: float | str = "auto"  # per client actor; auto = share the cluster's GPUs, 0 without GPUs


def num_hosts(cfg: ExperimentConfig, cluster: dict[str, float]) -> int:
    """Client actors a run of ``cfg`` starts on ``cluster`` (Ray resources), from its real plan."""
    return _hosts_of(dump_yaml(replace(cfg, name="x")), float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0)))


def check_plan(cfg: ExperimentConfig) -> None:
    """Plan ``cfg``'s data (dataset, partition, shard sizes) without packing: raises what a run would."""
    _planned(dump_yaml(replace(cfg, name="x")))


@functools.lru_cache(maxsize=256)
def _planned(cfg_yaml: str) -> None:
    from fedray.plan import plan_data

    plan_data(build(yaml.safe_load(cfg_yaml)))


@functools.lru_cache(maxsize=256)
def _hosts_of(cfg_yaml: str, cpus: float, gpus: float) -> int:
    from fedray.plan import plan_run

    return len(plan_run(build(yaml.safe_load(cfg_yaml)), cpus, gpus).hosts)


def client_gpus(res: TrialResources, cluster: dict[str, float], concurrency: int, hosts: int) -> float:
    """GPUs per client actor: 0 on a cluster without GPUs (a GPU request there hangs forever);
    ``auto`` shares the cluster's GPUs among the clients of all concurrent trials (at most 1 each)."""
    gpus = float(cluster.get("GPU", 0.0))
    if gpus <= 0:
        return 0.0
    if res.client_gpus == "auto":
        share = min(1.0, gpus / max(1, concurrency * hosts))
        return math.floor(share * 100) / 100 or 0.01
    return float(res.client_gpus)


def trial_bundles(cfg: ExperimentConfig, res: TrialResources, hosts: int, gpus: float) -> list[dict[str, float]]:
    """Placement-group bundles of one trial: the trainable, then ``hosts + 1`` identical bundles for the
    server and client actors. Identical, because Ray places each actor in any bundle it fits: a client
    that fit a larger server bundle would leave the server nowhere to go (a silent deadlock)."""
    actor = {"CPU": res.client_cpus} | ({"GPU": gpus} if gpus > 0 else {})
    return [{"CPU": res.trial_cpus}] + [dict(actor) for _ in range(hosts + 1)]


def fit_concurrency(requested: int, per_trial: dict[str, float], cluster: dict[str, float]) -> tuple[int, str | None]:
    """Trials that can run at once: ``requested``, lowered to what the cluster holds (with a warning).

    Raises ValueError when not even one trial fits.
    """
    fits = min(math.floor(cluster.get(r, 0.0) / need + 1e-9) for r, need in per_trial.items() if need > 0)
    if fits < 1:
        want = ", ".join(f"{v:g} {r}" for r, v in per_trial.items())
        have = ", ".join(f"{cluster.get(r, 0.0):g} {r}" for r in per_trial)
        raise ValueError(f"one trial needs {want} but the Ray cluster has {have}; lower resources.client_cpus / "
                         "resources.trial_cpus or data.num_clients in the sweep")
    if requested > fits:
        need = ", ".join(f"{v:g} {r}" for r, v in per_trial.items())
        return fits, (f"max_concurrent_trials={requested} but the cluster holds only {fits} trial(s) of {need} "
                      f"each at once; running {fits} at a time")
    return requested, None
