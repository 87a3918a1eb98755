"""Bad input that only shows on a real Ray: errors raised inside actors, clusters too small, ports that are not Ray."""

from __future__ import annotations

import io
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import ray.cloudpickle
from PIL import Image

from fedray.backend.errors import reraise_user_error, user_error
from fedray.backend.session import ClusterError, _probe_grpc, client_resources, join
from fedray.config import ConfigError
from fedray.data import DataError, open_dataset
from fedray.data.convert import write_dataset
from fedray.data.dataset import load_client_shards
from fedray.training.finite import NonFiniteError

# The stand-in actors below are shipped by value: Ray's workers cannot import a test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, value, value)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def bad_set(tmp_path_factory) -> str:
    """12 rows, row 7 (id 'r7') an undecodable image."""
    path = tmp_path_factory.mktemp("bad") / "data.parquet"
    write_dataset({"id": [f"r{i}" for i in range(12)], "split": ["train"] * 12,
                   "image": [b"garbage" if i == 7 else _png(i) for i in range(12)],
                   "text": [[f"caption {i}"] for i in range(12)]},
                  {"id": pa.string(), "split": pa.string(), "image": pa.binary(), "text": pa.list_(pa.string())},
                  {"name": "bad"}, str(path), tokenizer_json=Path(open_dataset("emoji").tokenizer).read_text())
    return str(path)


class Host:
    """A stand-in for a client host actor: decodes its clients' rows in the constructor, like ClientHost."""

    def __init__(self, path: str, rows: dict[int, list[int]], defer: bool = False) -> None:
        self.error: Exception | None = None
        try:
            self.shards = load_client_shards(open_dataset(path), {c: np.array(r) for c, r in rows.items()}, 8)
        except DataError as err:
            if not defer:
                raise
            self.error = err  # the recommended actor shape: keep it, raise it from ready()

    def ready(self) -> int:
        if self.error is not None:
            raise self.error
        return len(self.shards)

    def diverge(self, round_: int) -> None:
        raise NonFiniteError("train/loss", "nan", step=3).located(round=round_, client=5)


class Server:
    """A stand-in for the server actor: the error crosses two actor hops to reach the driver."""

    def run(self, path: str) -> int:
        import ray

        host = ray.remote(Host).options(num_cpus=0.1).remote(path, {0: [0, 1, 2], 1: [6, 7, 8]}, True)
        return ray.get(host.ready.remote(), timeout=600)


@pytest.mark.parametrize("defer", [False, True], ids=["constructor raises", "ready() raises"])
def test_a_bad_row_decoded_in_an_actor_reaches_the_user_as_one_line_naming_the_client(ray_local, bad_set, defer):
    ray = ray_local
    host = ray.remote(Host).options(num_cpus=0.1, max_restarts=0).remote(bad_set, {0: [0, 1, 2], 3: [6, 7, 8]}, defer)

    with pytest.raises(ray.exceptions.RayError) as info:
        ray.get(host.ready.remote(), timeout=600)
    with pytest.raises(DataError) as unwrapped:
        reraise_user_error(info.value)

    err = unwrapped.value
    assert str(err).startswith(f"client 3: dataset file {bad_set}, row 7 (id 'r7'), column 'image': cannot decode")
    assert "\n" not in str(err) and "Traceback" not in str(err)
    if defer:  # a real exception object, not rebuilt from text: its fields survive
        assert (err.client, err.row, err.column) == (3, 7, "image")
    ray.kill(host)


def test_errors_cross_two_actor_hops_and_non_finite_losses_keep_round_and_client(ray_local, bad_set):
    ray = ray_local
    server = ray.remote(Server).options(num_cpus=0.1).remote()
    host = ray.remote(Host).options(num_cpus=0.1).remote(bad_set, {0: [0, 1]})

    with pytest.raises(ray.exceptions.RayTaskError) as hop2:
        ray.get(server.run.remote(bad_set), timeout=600)
    with pytest.raises(ray.exceptions.RayTaskError) as nan:
        ray.get(host.diverge.remote(4), timeout=600)

    assert str(user_error(hop2.value)).startswith("client 1: dataset file")
    err = user_error(nan.value)
    assert isinstance(err, NonFiniteError) and (err.round, err.client, err.step) == (4, 5, 3)
    assert user_error(RuntimeError("not ours")) is None
    ray.kill(server)
    ray.kill(host)


def test_client_cpus_beyond_the_cluster_is_a_config_error_naming_the_key(ray_local, tiny):
    with pytest.raises(ConfigError, match=r"config key 'runtime.client_cpus': 2 client actors x 4 CPU \+ server "
                                          r"0.25 CPU = 8.25 CPUs, but the Ray cluster has 2"):
        client_resources(tiny("runtime.client_cpus=4").runtime, 2)
    with pytest.raises(ConfigError, match=r"config key 'runtime.server_cpus'"):
        client_resources(tiny("runtime.server_cpus=8").runtime, 2)


def test_client_cpus_beyond_the_cluster_fails_the_run_before_any_round(ray_local, tiny, tmp_path):
    from fedray.api import run_experiment

    with pytest.raises(ConfigError, match="config key 'runtime.client_cpus'"):
        run_experiment(tiny("runtime.client_cpus=4"), str(tmp_path / "run"), progress=lambda line: None)

    assert (tmp_path / "run" / "FAILED").is_file()
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "summary.json").exists()


def test_the_grpc_probe_accepts_a_real_ray_cluster(ray_local):
    _probe_grpc(ray_local.get_runtime_context().gcs_address, "--address")  # no error


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"],
                         ids=["silent", "http"])
def test_an_open_port_that_is_not_ray_is_a_named_error_not_a_hang(tiny, reply):
    """Before the probe, ray.init waited on such a port for minutes (issue 13: no error within 240 s)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conns = []
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            if reply:
                conn.sendall(reply)
            conns.append(conn)  # keep it open: silence, not a reset
        for c in conns:
            c.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ClusterError, match=rf"--address=127.0.0.1:{port}: something accepts connections there, "
                                               "but it is not a Ray cluster"):
            join(f"127.0.0.1:{port}", "--address")
    finally:
        stop.set()
        thread.join()
        server.close()
