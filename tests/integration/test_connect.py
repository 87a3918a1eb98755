"""Joining or starting Ray: clear errors for bad addresses, and never stopping someone else's Ray."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from fedray.backend.session import ClusterError, join, ray_session, target_address


def _connect(runtime, address=None) -> None:
    """ray_session's join path (ray_session itself reuses an already-initialized Ray and skips it)."""
    join(*target_address(runtime, address))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_unreachable_address_fails_fast_and_names_it(tiny):
    port = _closed_port()
    with pytest.raises(ClusterError, match=rf"--address=127.0.0.1:{port}: Ray cluster unreachable"):
        _connect(tiny().runtime, f"127.0.0.1:{port}")  # the TCP probe's answer: Ray alone retries for minutes


def test_dashboard_url_is_not_a_cluster_address(tiny, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(ClusterError, match=r"RAY_ADDRESS=http://127.0.0.1:8265: that is a dashboard"):
        _connect(tiny().runtime)


def test_malformed_address(tiny):
    with pytest.raises(ClusterError, match=r"runtime.address=headnode: expected HOST:PORT"):
        _connect(tiny("runtime.address=headnode").runtime)


def test_joined_ray_is_left_running(ray_local, tiny):
    with ray_session(tiny().runtime, "127.0.0.1:1"):  # already connected: the address is not even used
        assert ray_local.is_initialized()
    assert ray_local.is_initialized()  # fedray did not start it, so it did not shut it down


def test_a_local_ray_fedray_starts_binds_its_dashboard_to_loopback_and_is_stopped(tmp_path):
    code = (
        "import ray\n"
        "from fedray.backend.session import ray_session\n"
        "from fedray.config import load_config\n"
        "cfg = load_config(preset='tiny', overrides=['runtime.dashboard=true', 'runtime.num_cpus=1'])\n"
        "with ray_session(cfg.runtime):\n"
        "    print('URL', ray._private.worker.get_dashboard_url())\n"
        "print('AFTER', ray.is_initialized())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)

    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^URL 127\.0\.0\.1:\d+$", out.stdout, flags=re.M), out.stdout
    assert "AFTER False" in out.stdout  # fedray started it, so fedray stopped it
