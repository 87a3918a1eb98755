"""The private local Ray that fedray starts listens on loopback only: nothing it starts is reachable from the network.

A fresh interpreter starts fedray's private Ray (through ``ray_session``, with the dashboard on, a task and an
actor running), then lists the listening TCP sockets of itself and every process it started (from /proc:
socket inodes of each PID's file descriptors, matched against /proc/net/tcp{,6}).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, os, time
import ray
from fedray.backend.session import ray_session
from fedray.bench.common import process_tree
from fedray.config import load_config

def listening():
    inodes = {}
    for name, v6 in (("tcp", False), ("tcp6", True)):
        for line in open(f"/proc/net/{name}").read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":  # TCP_LISTEN
                inodes[f[9]] = (f[1], v6)
    found = []
    for pid in process_tree(os.getpid()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
            if inode in inodes:
                found.append({"pid": pid, "comm": comm, "addr": inodes[inode][0], "v6": inodes[inode][1]})
    return found

cfg = load_config(preset="tiny", overrides=["runtime.dashboard=true", "runtime.num_cpus=1"])
with ray_session(cfg.runtime):
    @ray.remote(num_cpus=0.1)
    class Echo:
        def pid(self):
            return os.getpid()

    actor = Echo.remote()
    actor_pid = ray.get(actor.pid.remote(), timeout=600)
    time.sleep(1)  # agents bind their ports right after registering
    print("RESULT", json.dumps({"node_ip": ray.util.get_node_ip_address(), "actor_pid": actor_pid,
                                "sockets": listening()}))
"""


def _loopback(addr: str, v6: bool) -> bool:
    """/proc/net/tcp{,6} local address (hex, little-endian words) -> is it on loopback?"""
    hexip = addr.split(":")[0]
    if not v6:
        return bytes.fromhex(hexip)[::-1][0] == 127
    raw = b"".join(bytes.fromhex(hexip[i:i + 8])[::-1] for i in range(0, 32, 8))
    if raw == bytes(15) + b"\x01":  # ::1
        return True
    return raw[:12] == bytes(10) + b"\xff\xff" and raw[12] == 127  # ::ffff:127.x.x.x


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_private_ray_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)

    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    sockets = result["sockets"]
    comms = {s["comm"] for s in sockets}
    assert result["node_ip"] == "127.0.0.1"
    assert {"gcs_server", "raylet"} <= comms, comms  # the inspection really saw Ray's servers
    assert any(s["pid"] == result["actor_pid"] for s in sockets)  # and a worker's core-worker server
    exposed = [s for s in sockets if not _loopback(s["addr"], s["v6"])]
    assert not exposed, f"listening beyond 127.0.0.1: {exposed}"


def test_loopback_decoder():
    assert _loopback("0100007F:1F90", False) and not _loopback("00000000:1F90", False)
    assert _loopback("00000000000000000000000001000000:1F90", True)  # ::1
    assert _loopback("0000000000000000FFFF00000100007F:1F90", True)  # ::ffff:127.0.0.1
    assert not _loopback("00000000000000000000000000000000:1F90", True)  # ::
