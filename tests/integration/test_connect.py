"""Joining or starting Ray: clear errors for bad addresses, and never stopping someone else's Ray."""

from __future__ import annotations

import socket
import time

import pytest

from fedray.backend.session import ClusterError, ray_session


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_unreachable_address_fails_fast_and_names_it(tiny):
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(ClusterError, match=rf"--address=127.0.0.1:{port}: Ray cluster unreachable"):
        with ray_session(tiny().runtime, f"127.0.0.1:{port}"):
            pass
    assert time.monotonic() - start < 10  # Ray alone retries for minutes


def test_dashboard_url_is_not_a_cluster_address(tiny, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(ClusterError, match=r"RAY_ADDRESS=http://127.0.0.1:8265: that is a dashboard"):
        with ray_session(tiny().runtime):
            pass


def test_malformed_address(tiny):
    with pytest.raises(ClusterError, match=r"runtime.address=headnode: expected HOST:PORT"):
        with ray_session(tiny("runtime.address=headnode").runtime):
            pass


def test_joined_ray_is_left_running(ray_local, tiny):
    with ray_session(tiny().runtime, "127.0.0.1:1"):  # already connected: the address is not even used
        assert ray_local.is_initialized()
    assert ray_local.is_initialized()  # fedray did not start it, so it did not shut it down
