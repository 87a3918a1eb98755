"""Run by test_node_failure.py in a process of its own (a Ray cluster of three nodes on loopback needs a fresh
driver): a fault-free run, then the same run with a worker node killed after round 1; prints a JSON report.

Usage: python node_failure_job.py S3_SOURCE OUT_DIR   (AWS_* variables name the S3 test server)
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from fedray.api import run_experiment
from fedray.config import load_config

ray_constants.ENABLE_RAY_CLUSTER = False  # every node on 127.0.0.1 (Ray would otherwise use the routable IP)

source, out = sys.argv[1], sys.argv[2]
# Fast failure detection: the GCS declares a node dead after 3 missed 1-s health checks.
system = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False, "_system_config": system})
# The head holds the driver's server actor (0.25 CPU) but no 1-CPU client; each worker holds two clients.
workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
ray.init(address=cluster.address, log_to_driver=False)
cfg = load_config(preset="tiny", overrides=[
    f"data.source={source}", "data.num_clients=2", "train.rounds=[2, 2]", "runtime.client_cpus=1",
    "runtime.torch_threads=1", "runtime.server_cpus=0.25", "runtime.clients_per_actor=1"])

plain = run_experiment(cfg, f"{out}/plain", progress=lambda _: None)
report: dict = {"placement": {}, "killed": None}


def kill_a_node_with_clients(record: dict) -> None:
    """After round 1's record (the server is in round 2): kill a worker node holding a client host, hard."""
    if record["round"] != 1:
        return
    namespace = json.load(open(f"{out}/faulty/ray.json"))["namespace"]
    nodes = {}
    for name in ("fedray-client-000", "fedray-client-001"):
        actor = ray.get_actor(name, namespace=namespace)
        nodes[name] = ray.get(actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))
    report["placement"] = {k: ("head" if v == cluster.head_node.node_id else
                               f"worker{[w.node_id for w in workers].index(v)}") for k, v in nodes.items()}
    victim = next(w for w in workers if w.node_id in nodes.values())
    cluster.remove_node(victim, allow_graceful=False)
    report["killed"] = f"worker{workers.index(victim)}"
    report["killed_at"] = time.monotonic()


faulty = run_experiment(cfg, f"{out}/faulty", progress=lambda _: None, on_record=kill_a_node_with_clients)
report["same_weights"] = all(np.array_equal(plain.state[k], faulty.state[k]) for k in plain.state)
report["rounds"] = [r["round"] for r in faulty.rows]
report["failures"] = sum(r.get("fault/client_failures", 0) for r in faulty.rows)
report["alive_nodes"] = sum(n["Alive"] for n in ray.nodes())
print("REPORT " + json.dumps(report), flush=True)
ray.shutdown()
cluster.shutdown()
