"""Joining or starting Ray. fedray shuts down only a Ray instance it started itself."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from fedray.config import RuntimeConfig

log = logging.getLogger("fedray")


class ClusterError(ConnectionError):
    """The Ray cluster to join cannot be used (unreachable, wrong kind of address, authentication)."""


@contextmanager
def ray_session(runtime: RuntimeConfig, address: str | None = None) -> Iterator[None]:
    """Use the running Ray, join ``address``/``runtime.address``/``RAY_ADDRESS``, or start a private local one.

    ``ray job submit`` sets ``RAY_ADDRESS`` for its entrypoint, so a submitted fedray joins that cluster.
    Only a Ray that this function started is shut down on exit.
    """
    if ray.is_initialized():
        yield
        return
    target, source = target_address(runtime, address)
    if target is not None:
        join(target, source)
        yield  # joined a cluster someone else runs: never shut it down
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # dashboard_host: never listen beyond this machine unless the user starts Ray themselves.
    ray.init(address="local", num_cpus=runtime.num_cpus, include_dashboard=runtime.dashboard,
             dashboard_host="127.0.0.1", log_to_driver=True,
             _node_ip_address="127.0.0.1")  # a private instance talks only over loopback
    try:
        yield
    finally:
        ray.shutdown()


def target_address(runtime: RuntimeConfig, address: str | None) -> tuple[str | None, str]:
    """The cluster to join and where that came from (--address, runtime.address, RAY_ADDRESS); None = local."""
    for value, source in ((address, "--address"), (runtime.address, "runtime.address"),
                          (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS")):
        if value:
            return (None, source) if value == "local" else (value, source)
    return None, ""


def join(target: str, source: str) -> None:
    """Connect to an existing cluster, turning Ray's slow, generic failures into clear, fast ones."""
    where = f"{source}={target}"
    if target.startswith(("http://", "https://")):
        raise ClusterError(
            f"{where}: that is a dashboard / job-submission URL. Submit fedray with "
            f"`ray job submit --address {target} -- fedray run ...`, or give the cluster's GCS address HOST:6379")
    if target != "auto":
        _probe(target, where)
    try:
        ray.init(address=target, log_to_driver=True)
    except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as err:
        if _is_auth_failure(err):
            raise ClusterError(
                f"{where}: the cluster rejected fedray's authentication token. Ray 2.60 clusters use token "
                "authentication: run with RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token, "
                "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN") from None
        raise ClusterError(f"{where}: cannot connect to a Ray cluster there ({_first_line(err)})") from None


def _probe(target: str, where: str, timeout: float = 3.0) -> None:
    """A TCP connect first: Ray itself retries an unreachable address for minutes."""
    hostport = target.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"{where}: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto', or 'local'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ClusterError(
            f"{where}: Ray cluster unreachable ({err.strerror or err}). Start one with `ray start --head`, fix "
            "the address, or leave --address/RAY_ADDRESS unset to run on a private local Ray") from None


def _is_auth_failure(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(seen) \
                or "AuthenticationError" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def cluster_slots() -> tuple[float, float]:
    """CPUs and GPUs of the Ray cluster joined or started: what ``clients_per_actor: auto`` packs for."""
    res = ray.cluster_resources()
    return float(res.get("CPU", 1.0)), float(res.get("GPU", 0.0))


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
