"""A worker node lost mid-run on a real multi-node Ray (three raylets on loopback), data from the S3 test server:
its client hosts are recreated on the surviving node with their shard and frozen prefix, and the run ends with the
weights of a fault-free run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fedray.data import open_dataset

JOB = Path(__file__).with_name("node_failure_job.py")


def test_a_lost_worker_node_is_survived_with_identical_weights(s3_server, tmp_path):
    info = open_dataset("emoji")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="fedray-nodes")
    s3.upload_file(info.path, "fedray-nodes", "emoji/emoji.parquet")
    s3.upload_file(info.tokenizer, "fedray-nodes", "emoji/tokenizer.json")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3_server.key, "AWS_SECRET_ACCESS_KEY": s3_server.secret,
           "AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "PYTHONPATH": str(JOB.parents[2]), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    done = subprocess.run([sys.executable, str(JOB), "s3://fedray-nodes/emoji/emoji.parquet", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=1800)  # a safety bound only

    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[0].removeprefix("REPORT "))
    assert set(report["placement"].values()) <= {"worker0", "worker1"}  # clients ran on worker nodes, not the head
    assert report["killed"] in report["placement"].values()  # the lost node held a client
    assert report["rounds"] == [1, 2, 3, 4] and report["same_weights"]
    assert report["failures"] >= 1 and report["alive_nodes"] == 2  # the loss was seen and counted
