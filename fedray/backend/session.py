"""Joining or starting Ray. fedray shuts down only a Ray instance it started itself."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import ray

from fedray.config import ConfigError, RuntimeConfig
from fedray.interrupt import kept_sigterm

log = logging.getLogger("fedray")
GRPC_PROBE_S = 10.0  # an HTTP/2 handshake with a live GCS takes milliseconds; Ray's own connect retries for minutes


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
    try:
        with kept_sigterm(), _auth_notice_hidden():
            context = start_private(num_cpus=runtime.num_cpus, include_dashboard=runtime.dashboard, **quiet())
        announce(context.dashboard_url if runtime.dashboard else None)
        with raylet_banners_hidden():
            yield
    finally:
        ray.shutdown()


@contextmanager
def _auth_notice_hidden() -> Iterator[None]:
    """Ray 2.60 starts a new local cluster with token authentication (what fedray wants: keep it) and logs
    "Token authentication is enabled for this Ray cluster" on every start: that notice is hidden unless -v.
    Setting RAY_AUTH_MODE=token instead would also silence it, but after ``import ray`` the driver's cached
    config no longer sees the variable and the driver's own connection is refused."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    if not verbose():
        notice.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notice.setLevel(level)


def verbose() -> bool:
    """``fedray -v``: show Ray's INFO lines and the actors' output (``FEDRAY_VERBOSE=1``)."""
    return os.environ.get("FEDRAY_VERBOSE", "0") == "1"


def quiet() -> dict[str, Any]:
    """``ray.init`` arguments: by default Ray's INFO lines and the actors' stdout/stderr (torch and Ray
    chatter, teardown dumps) stay in the session's log files; fedray's own lines and warnings still print."""
    loud = verbose()
    return {"log_to_driver": loud, "logging_level": logging.INFO if loud else logging.WARNING}


@contextmanager
def raylet_banners_hidden() -> Iterator[None]:
    """Without -v, hide the raylet's error-channel banners ("(raylet) Task was killed due to the node running
    low on memory ...", "(raylet) Raylet is terminated ..."): Ray's driver prints them whatever
    ``log_to_driver`` says. fedray reports the same events itself (``faults: N lost`` on the round line)."""
    if verbose():
        yield
        return
    _show_raylet_banners(False)
    try:
        yield
    finally:
        _show_raylet_banners(True)


def _show_raylet_banners(show: bool) -> None:
    # The switch Ray itself uses to mute worker and raylet lines at a debugger breakpoint; with
    # log_to_driver=False the raylet's error channel is all it still governs.
    if hasattr(ray._private.worker, "_worker_logs_enabled"):
        ray._private.worker._worker_logs_enabled = show


def announce(dashboard_url: str | None) -> None:
    """Where to watch a private local Ray: its dashboard (token-protected) and the Prometheus metrics."""
    node = ray._private.worker._global_node  # the node this driver started; Ray has no public accessor
    port = getattr(node, "metrics_export_port", None)
    if dashboard_url:
        token = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
        log.info("Ray dashboard: http://%s (token authentication: its API wants the header "
                 "'Authorization: Bearer <the token in %s>')", dashboard_url, token)
    if port:
        log.info("metrics (Prometheus text): http://127.0.0.1:%s/metrics", port)


def start_private(**init_kwargs: Any) -> Any:
    """``ray.init(address="local")`` with every Ray server of the new instance listening on 127.0.0.1 only.

    Ray decides where its servers listen from the node IP: 127.0.0.1 makes the GCS, raylet, object manager,
    core workers and agents bind to loopback, any other address to every interface. But
    ``ray.init(_node_ip_address="127.0.0.1")`` alone does not do it: Ray replaces a loopback node IP by the
    host's routable address (``services.resolve_ip_for_localhost``) unless ``ray_constants.ENABLE_RAY_CLUSTER``
    is false (the ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` switch, read once at import). fedray turns it off just
    for this call: a private instance has one node, so it never needs a routable address.
    tests/integration/test_loopback.py lists the listening sockets of every process started and fails on any
    beyond loopback.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with _loopback_node():
        # dashboard_host: the dashboard, when asked for, is on loopback too.
        context = ray.init(address="local", dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1", **init_kwargs)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != "127.0.0.1":  # a Ray release that changed the rule: say so rather than listen silently
        log.warning("the private local Ray runs with node IP %s, not 127.0.0.1: its servers may listen beyond "
                    "this machine (token authentication still guards them)", node_ip)
    return context


@contextmanager
def _loopback_node() -> Iterator[None]:
    """Keep Ray from replacing a loopback address by the host's routable one (see ``start_private``)."""
    from ray._private import ray_constants

    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _loopback_only(target: str) -> bool:
    """A loopback GCS address whose cluster does not answer on the host's routable IP, the one Ray would
    rewrite it to (a cluster started with node IP 127.0.0.1, like fedray's private one): join it as loopback."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not (host in ("localhost", "::1") or host.startswith("127.")) or not port.isdigit():
        return False
    from ray._private import services

    routable = services.get_node_ip_address()
    if routable.startswith("127."):
        return False
    try:
        socket.create_connection((routable, int(port)), timeout=1.0).close()
        return False
    except OSError:
        return True


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
        if not target.startswith("ray://"):
            _probe_grpc(target, where)
    try:
        # A loopback address names a cluster that (like fedray's private one) may listen on loopback only:
        # Ray would otherwise rewrite 127.0.0.1 to the host's routable IP and wait minutes on a closed port.
        loopback = not target.startswith("ray://") and _loopback_only(target)
        with kept_sigterm(), (_loopback_node() if loopback else nullcontext()):
            ray.init(address=target, **quiet())
        if not verbose():
            _show_raylet_banners(False)  # stays so while connected: ray.shutdown() by whoever ends the job
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


def _probe_grpc(target: str, where: str, timeout: float = GRPC_PROBE_S) -> None:
    """A Ray GCS speaks gRPC (HTTP/2): a port that accepts TCP but completes no HTTP/2 handshake is not a Ray
    cluster, and ``ray.init`` would wait on it for minutes. Skipped with TLS (the probe is plaintext)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    import grpc  # installed with Ray

    channel = grpc.insecure_channel(target.removeprefix("ray://"))
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ClusterError(
            f"{where}: something accepts connections there, but it is not a Ray cluster (no gRPC handshake within "
            f"{timeout:g}s). Give the head node's GCS address (HOST:6379 by default, as printed by "
            "`ray start --head`), or leave --address/RAY_ADDRESS unset to run on a private local Ray") from None
    finally:
        channel.close()


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
            raise ConfigError(f"config key 'runtime.server_cpus': the Ray cluster's {total:g} CPUs cannot hold "
                              f"{num_hosts} client actors besides the server's {runtime.server_cpus:g}")
    need = runtime.server_cpus + num_hosts * cpus
    if need > total + 1e-9 and not _autoscaling():
        key = "runtime.client_cpus" if runtime.client_cpus is not None else "runtime.server_cpus"
        raise ConfigError(
            f"config key '{key}': {num_hosts} client actors x {cpus:g} CPU + server {runtime.server_cpus:g} CPU = "
            f"{need:g} CPUs, but the Ray cluster has {total:g}; lower runtime.client_cpus (or leave it unset: auto) "
            "and runtime.server_cpus")
    return cpus, gpus


def _autoscaling() -> bool:
    return os.environ.get("FEDRAY_AUTOSCALING", "0") == "1"
