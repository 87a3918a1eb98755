"""Run by test_node_failure.py in a process of its own (a multi-node Ray needs a fresh driver): start a Ray cluster
of three raylets on 127.0.0.1 (``ray.cluster_utils.Cluster``), run fedray on it, and when round 1's record reaches
the driver, kill a worker node that holds a client host. Prints one ``REPORT {json}`` line on stdout; a timeline on
stderr.

Usage: python node_failure_job.py OVERRIDES_JSON OUT_DIR
    OVERRIDES_JSON: a file holding the run's config overrides (data source and S3 storage keys: not on argv).
    The test sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (every node keeps 127.0.0.1, in every process Ray starts) and
    RAY_TMPDIR (the cluster's files and its address file stay out of /tmp/ray, where other Ray instances live).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import ray
from ray._private import ray_constants
from ray._private.state import actors as actor_table  # the GCS's actor table: no call queued behind a train
from ray.cluster_utils import Cluster

from fedray.api import run_experiment
from fedray.config import load_config

T0 = time.monotonic()
WATCHDOG_S = float(os.environ.get("NODE_FAILURE_WATCHDOG_S", "540"))  # a safety bound; events decide the rest
CLIENTS = ("fedray-client-000", "fedray-client-001")


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def placement() -> dict[str, dict]:
    """Each client host's node and restart count, from the GCS (a named actor's latest incarnation)."""
    seen = {}
    for info in actor_table().values():
        if info["Name"] in CLIENTS or info["Name"] == "fedray-server":
            seen[info["Name"]] = {"node": info["Address"]["NodeID"], "state": info["State"],
                                  "restarts": info["NumRestarts"]}
    return seen


def watchdog() -> None:
    """Past the safety bound: say where every actor is (a start-up hang shows a PENDING_CREATION actor), then go;
    Ray's reaper ends the cluster's processes with this process, and the test kills the process group."""
    try:
        log(f"WATCHDOG after {WATCHDOG_S:g}s: actors {placement()}; nodes "
            f"{[(n['NodeID'][:8], n['Alive'], n['Resources'].get('CPU')) for n in ray.nodes()]}")
    finally:
        os._exit(3)


def main(overrides_file: str, out: str) -> None:
    assert not ray_constants.ENABLE_RAY_CLUSTER, "run with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"
    timer = threading.Timer(WATCHDOG_S, watchdog)
    timer.daemon = True
    timer.start()
    # Fast failure detection: the GCS declares a node dead after 3 missed 1-s health checks (default: 30 s).
    system = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    # The head (the driver's node, which holds the server actor) has 1 CPU: with the server's 0.25 secured there, a
    # 1-CPU client host cannot fit and goes to a worker. Each worker has room for both hosts, so a host lost with
    # one worker comes back on the other.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False, "_system_config": system})
    try:
        workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
        names = {cluster.head_node.node_id: "head", **{w.node_id: f"worker{i}" for i, w in enumerate(workers)}}
        log(f"cluster up: {cluster.address}, nodes {names}")
        cfg = load_config(preset="tiny", overrides=json.load(open(overrides_file)) + [
            "train.rounds=[1, 2]", "runtime.client_cpus=1", "runtime.torch_threads=1", "runtime.server_cpus=0.25",
            "runtime.clients_per_actor=1", "runtime.round_timeout=300"])
        report: dict = {"nodes": names, "placement": {}, "killed": None}

        def kill_a_worker_with_a_client(record: dict) -> None:
            """Round 1's record reached the driver. The server's stream runs at most one event ahead of the driver
            (run_on_ray), so round 2 (stage 2: the frozen prefix in use) has not started, however slow this driver:
            kill a worker node that holds a client host, hard (like a machine lost); round 2 must find it gone."""
            log(f"round {record['round']} recorded")
            if record["round"] != 1:
                return
            where = placement()
            report["placement"] = {k: names.get(v["node"], v["node"]) for k, v in where.items()}
            report["driver"] = names.get(ray.get_runtime_context().get_node_id())
            victim = next(w for w in workers if any(where[c]["node"] == w.node_id for c in CLIENTS))
            log(f"placement {report['placement']}; killing {names[victim.node_id]}")
            cluster.remove_node(victim, allow_graceful=False)
            report["killed"] = names[victim.node_id]
            log(f"{report['killed']} killed")

        # fedray joins the cluster by its loopback GCS address, as a user's driver on the head would.
        result = run_experiment(cfg, f"{out}/faulty", address=cluster.address, progress=log,
                                on_record=kill_a_worker_with_a_client)
        after = placement()
        report["after"] = {k: {"node": names.get(v["node"], v["node"]), "restarts": v["restarts"]}
                           for k, v in after.items()}
        report["rounds"] = [r["round"] for r in result.rows]
        report["failures"] = sum(r.get("fault/client_failures", 0) for r in result.rows)
        report["completed"] = [r.get("fault/completed") for r in result.rows]
        report["alive_nodes"] = sorted(names[n["NodeID"]] for n in ray.nodes() if n["Alive"])
        report["node_ips"] = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
        log("run finished")
        print("REPORT " + json.dumps(report), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
        log("cluster shut down")


if __name__ == "__main__":
    main(*sys.argv[1:3])
