"""S3 credentials given in the config never reach the run directory, the logs or the metrics."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from fedray.api import run_experiment
from fedray.data import open_dataset

FAST = ("data.train_limit=64", "data.eval_limit=16", "train.batch_size=16", "train.rounds=[1, 1]",
        "runtime.client_cpus=0.5", "runtime.torch_threads=1")


@pytest.fixture(scope="module")
def dataset(s3_server):
    info = open_dataset("emoji")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="fedray-secrets")
    s3.upload_file(info.path, "fedray-secrets", "emoji/emoji.parquet")
    s3.upload_file(info.tokenizer, "fedray-secrets", "emoji/tokenizer.json")
    return "s3://fedray-secrets/emoji/emoji.parquet"


def test_credentials_stay_out_of_run_dir_logs_and_metrics(ray_local, tiny, s3_server, dataset, tmp_path, capfd,
                                                          caplog):
    creds = [s3_server.secret, s3_server.key]
    cfg = tiny(f"data.source={dataset}", f"data.storage.endpoint_url={s3_server.endpoint}",
               "data.storage.region=us-east-1", f"data.storage.key={s3_server.key}",
               f"data.storage.secret={s3_server.secret}", *FAST)
    lines: list[str] = []

    result = run_experiment(cfg, str(tmp_path / "run"), progress=lines.append)

    assert result.summary["rounds"] == 2
    files = {str(p.relative_to(tmp_path / "run")): p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert {"config.yaml", "checkpoint.pt", "model.safetensors", "metrics.jsonl", "summary.json"} <= set(files)
    assert s3_server.endpoint.encode() in files["checkpoint.pt"]  # the grep sees config strings in the checkpoint
    for name, data in files.items():
        for c in creds:
            assert c.encode() not in data, f"credential in {name}"
    captured = capfd.readouterr()
    logs = "\n".join(lines) + captured.out + captured.err + caplog.text
    import ray

    node = ray._private.worker._global_node
    for path in Path(node.get_session_dir_path(), "logs").rglob("*"):
        if path.is_file():
            logs += path.read_bytes().decode(errors="replace")
    deadline = time.monotonic() + 600  # a safety bound: the series' arrival decides
    while True:  # fedray's series reach the export on Ray's report interval
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_export_port}/metrics", timeout=10).read()
        if re.search(rb'^ray_fedray_rounds_total\{.*run="tiny"', metrics, flags=re.M) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert re.search(rb'^ray_fedray_rounds_total\{.*run="tiny"', metrics, flags=re.M)
    for c in creds:
        assert c not in logs
        assert c.encode() not in metrics
