"""A worker node lost mid-run on a real multi-node Ray (three raylets on 127.0.0.1), the data on the S3 test server:
the lost client host is recreated by Ray on the surviving worker, reloads its shard and the stage's frozen prefix,
and the run ends with the weights of a fault-free run, the loss counted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from fedray.api import run_experiment
from fedray.config import load_config
from fedray.data import open_dataset

JOB = Path(__file__).with_name("node_failure_job.py")
SAFETY_S = 600  # a bound on a hang only: the job's own watchdog reports first (540 s)


def test_a_lost_worker_node_is_survived_with_identical_weights(s3_server, tmp_path):
    info = open_dataset("emoji")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="fedray-nodes")
    s3.upload_file(info.path, "fedray-nodes", "emoji/emoji.parquet")
    s3.upload_file(info.tokenizer, "fedray-nodes", "emoji/tokenizer.json")
    # Clients on every node read the bucket with the credentials the config carries (not this process's env).
    data = ["data.source=s3://fedray-nodes/emoji/emoji.parquet", f"data.storage.endpoint_url={s3_server.endpoint}",
            "data.storage.region=us-east-1", f"data.storage.key={s3_server.key}",
            f"data.storage.secret={s3_server.secret}"]
    (tmp_path / "overrides.json").write_text(json.dumps(data))
    ray_tmp = tempfile.mkdtemp(prefix="fr-nodes-")  # short: Ray's socket paths must stay under 107 characters
    env = {**os.environ, "PYTHONPATH": str(JOB.parents[2]), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    job = subprocess.Popen([sys.executable, str(JOB), str(tmp_path / "overrides.json"), str(tmp_path)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = job.communicate(timeout=SAFETY_S)
    except subprocess.TimeoutExpired:
        job.kill()
        stdout, stderr = job.communicate()
    finally:
        try:  # the job leads its process group, Ray's processes included: end whatever it left
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(ray_tmp, ignore_errors=True)

    lines = [line for line in stdout.splitlines() if line.startswith("REPORT ")]
    assert job.returncode == 0 and lines, f"rc={job.returncode}\n{stdout[-3000:]}\n{stderr[-6000:]}"
    report = json.loads(lines[0].removeprefix("REPORT "))
    print(stderr, "\n", report)  # the job's timeline and the placement (pytest -rP shows them)
    clients = {k: v for k, v in report["placement"].items() if k.startswith("fedray-client-")}
    assert report["driver"] == "head" and report["placement"]["fedray-server"] == "head", report
    assert set(clients.values()) <= {"worker0", "worker1"}, report  # the head's CPU was the server's
    assert report["killed"] in clients.values(), report  # the lost node held a client host
    lost = [k for k, v in clients.items() if v == report["killed"]]
    survivor = ({"worker0", "worker1"} - {report["killed"]}).pop()
    for name in lost:  # recreated by Ray on the surviving worker
        assert report["after"][name]["node"] == survivor and report["after"][name]["restarts"] >= 1, report
    assert report["alive_nodes"] == sorted(["head", survivor]) and report["node_ips"] == ["127.0.0.1"], report
    assert report["rounds"] == [1, 2, 3] and report["completed"] == [2, 2, 2], report
    assert report["failures"] >= len(lost), report  # the loss was seen and counted

    # The same run, fault-free, in this process (the local backend: the same arithmetic, test_faults.py shows it).
    cfg = load_config(preset="tiny", overrides=data + ["train.rounds=[1, 2]", "runtime.backend=local",
                                                       "runtime.torch_threads=1"])
    run_experiment(cfg, str(tmp_path / "reference"), progress=lambda _: None)
    faulty, reference = (load_file(str(tmp_path / run / "model.safetensors"))
                          for run in ("faulty", "reference"))
    assert faulty.keys() == reference.keys()
    for name, value in reference.items():
        assert np.array_equal(value, faulty[name]), name
