"""Joining or starting Ray. fedray shuts down only a Ray instance it started itself."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from fedray.config import RuntimeConfig

log = logging.getLogger("fedray")


@contextmanager
def ray_session(runtime: RuntimeConfig, address: str | None = None) -> Iterator[None]:
    """Use the running Ray, join ``address``/``RAY_ADDRESS``, or start a private local instance."""
    if ray.is_initialized():
        yield
        return
    target = address or runtime.address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, log_to_driver=True)
        yield  # joined a cluster someone else runs: never shut it down
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=runtime.num_cpus, include_dashboard=False, log_to_driver=True,
             _node_ip_address="127.0.0.1")  # a private instance talks only over loopback
    try:
        yield
    finally:
        ray.shutdown()


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def client_resources(runtime: RuntimeConfig, num_hosts: int) -> tuple[float, float]:
    """CPUs and GPUs per client actor that this cluster can actually grant.

    A GPU request on a cluster without GPUs would hang forever in Ray, so it falls back to CPU.
    """
    gpus = runtime.client_gpus
    if gpus > 0 and cluster_gpus() == 0:
        log.warning("runtime.client_gpus=%s but the Ray cluster has no GPUs: client actors run on CPU", gpus)
        gpus = 0.0
    cpus = runtime.client_cpus
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if cpus is None:  # share what is left after the server, at most one CPU each
        cpus = math.floor(min(1.0, (total - runtime.server_cpus) / num_hosts) * 1e4) / 1e4  # never round up
        if cpus <= 0:
            raise RuntimeError(f"runtime: the Ray cluster's {total:g} CPUs cannot hold {num_hosts} client actors "
                               f"besides the server's {runtime.server_cpus:g}")
    need = runtime.server_cpus + num_hosts * cpus
    if need > total + 1e-9 and not _autoscaling():
        raise RuntimeError(
            f"runtime: {num_hosts} client actors x {cpus} CPU + server {runtime.server_cpus} CPU = {need:g} CPUs, "
            f"but the Ray cluster has {total:g}; lower runtime.client_cpus or leave it unset (auto)")
    return cpus, gpus


def _autoscaling() -> bool:
    return os.environ.get("FEDRAY_AUTOSCALING", "0") == "1"
