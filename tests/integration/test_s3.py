"""Datasets read from, and run directories written to, a real S3-compatible server (moto_server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedray.data import open_dataset
from fedray.data.storage import StorageError
from fedray.rundir import OutputError

FAST = ("data.train_limit=64", "data.eval_limit=16", "train.batch_size=16", "train.rounds=[1, 0]")


@pytest.fixture(scope="module")
def bucket(s3_server):
    """Bucket 'fedray-data' holding the embedded emoji set (Parquet + tokenizer.json), and bucket 'fedray-runs'."""
    info = open_dataset("emoji")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="fedray-data")
    s3.create_bucket(Bucket="fedray-runs")
    s3.upload_file(info.path, "fedray-data", "sets/emoji.parquet")
    s3.upload_file(info.tokenizer, "fedray-data", "sets/tokenizer.json")
    return "s3://fedray-data/sets/emoji.parquet"


def _storage(s3_server, secret: str | None = None) -> list[str]:
    return [f"data.storage.endpoint_url={s3_server.endpoint}", "data.storage.region=us-east-1",
            f"data.storage.key={s3_server.key}", f"data.storage.secret={secret or s3_server.secret}"]


def _objects(s3_server, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = s3_server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k.removeprefix(prefix): s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_local_run_reads_bucket_and_writes_run_dir_to_bucket(tiny, s3_server, bucket):
    from fedray.api import run_experiment

    cfg = tiny(f"data.source={bucket}", "runtime.backend=local", "data.partition.kind=dirichlet",
               "data.partition.beta=1.0", *FAST, *_storage(s3_server))
    result = run_experiment(cfg, "s3://fedray-runs/exp/run1", progress=lambda line: None)
    assert result.run_dir == "s3://fedray-runs/exp/run1"
    files = _objects(s3_server, "fedray-runs", "exp/run1/")
    towers = {n for n in files if n.startswith("towers/")}
    assert set(files) - towers == {"config.yaml", "partition.json", "metrics.jsonl", "clients.jsonl", "summary.json",
                                   "checkpoint.pt", "model.safetensors"}
    assert {"towers/image/config.json", "towers/image/model.safetensors", "towers/text/tokenizer.json",
            "towers/text/fedray_tower.json"} <= towers  # the export, one object per file
    summary = json.loads(files["summary.json"])
    assert summary["rounds"] == 1 and summary["dataset"] == "emoji"
    assert sum(c["size"] for c in json.loads(files["partition.json"])["clients"]) == 64
    assert s3_server.secret.encode() not in files["config.yaml"] and s3_server.key.encode() not in files["config.yaml"]
    assert s3_server.endpoint.encode() in files["config.yaml"]  # the rest of the storage section is kept
    # the same prefix again: refused before anything runs
    with pytest.raises(OutputError, match="s3://fedray-runs/exp/run1: exists and is not empty"):
        run_experiment(cfg, "s3://fedray-runs/exp/run1", progress=lambda line: None)


def test_ray_run_with_credentials_from_aws_env_vars(tiny, s3_server, bucket, ray_local, monkeypatch):
    from fedray.api import run_experiment

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    cfg = tiny(f"data.source={bucket}", "runtime.backend=ray", "runtime.client_cpus=0.5", *FAST)
    result = run_experiment(cfg, "s3://fedray-runs/exp/ray1", progress=lambda line: None)
    files = _objects(s3_server, "fedray-runs", "exp/ray1/")
    assert json.loads(files["summary.json"])["clients"] == 2
    assert len(files["metrics.jsonl"].splitlines()) == 1 == len(result.rows)


def test_missing_bucket_and_wrong_credentials_are_named(tiny, s3_server, bucket, tmp_path):
    from fedray.api import run_experiment

    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x\.parquet: bucket 'no-such-bucket' does not exist "
                                           rf"at endpoint {s3_server.endpoint}"):
        run_experiment(tiny("data.source=s3://no-such-bucket/x.parquet", *_storage(s3_server)), str(tmp_path / "r1"))
    with pytest.raises(StorageError, match=r"access denied to bucket 'fedray-data'") as err:
        run_experiment(tiny(f"data.source={bucket}", *_storage(s3_server, secret="wrong-secret-value")),
                       str(tmp_path / "r2"))
    assert "wrong-secret-value" not in str(err.value) and s3_server.key not in str(err.value)
    with pytest.raises(OutputError, match=r"--out s3://nope-bucket/run: bucket 'nope-bucket' does not exist"):
        run_experiment(tiny(f"data.source={bucket}", "runtime.backend=local", *FAST, *_storage(s3_server)),
                       "s3://nope-bucket/run")
    assert not any(Path(tmp_path).iterdir())  # nothing was claimed locally for the failed runs


def test_converter_writes_to_bucket_and_reads_back(s3_server, bucket, tmp_path, monkeypatch):
    from PIL import Image

    from fedray.config.schema import StorageConfig
    from fedray.data import load_rows
    from fedray.data.convert import convert_coco

    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i:012d}.png"} for i in (1, 2, 3)]
    for im in images:
        Image.new("RGB", (12, 10), (40 * im["id"], 0, 0)).save(root / "train2017" / im["file_name"])
    caps = [{"id": 10 + i, "image_id": i, "caption": f"a red square number {i}"} for i in (1, 2, 3)]
    anns = [root / "captions_train2017.json"]
    anns[0].write_text(json.dumps({"images": images, "annotations": caps}))
    storage = StorageConfig(endpoint_url=s3_server.endpoint, region="us-east-1", key=s3_server.key,
                            secret=s3_server.secret)
    counts = convert_coco(str(root), [str(a) for a in anns], "s3://fedray-data/coco/coco.parquet", image_size=8,
                          storage=storage)
    assert counts == {"train": 3, "test": 0}
    info = open_dataset("s3://fedray-data/coco/coco.parquet", storage)
    assert info.tokenizer == "s3://fedray-data/coco/tokenizer.json"
    shard = load_rows(info, [1, 2], max_length=8)
    assert shard.tensors["image"].shape == (2, 3, 8, 8) and shard.tensors["text_ids"].shape == (2, 8)


def test_resume_of_an_s3_run_directory(tiny, s3_server, bucket, monkeypatch):
    """``--resume s3://...`` continues from the checkpoint stored there and ends with uninterrupted weights."""
    import numpy as np

    from fedray.api import resume_experiment, run_experiment

    for var, value in (("AWS_ACCESS_KEY_ID", s3_server.key), ("AWS_SECRET_ACCESS_KEY", s3_server.secret),
                       ("AWS_ENDPOINT_URL", s3_server.endpoint), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    s3 = s3_server.client()
    cfg = tiny(f"data.source={bucket}", "runtime.backend=local", "data.train_limit=64", "data.eval_limit=16",
               "train.batch_size=16", "train.rounds=[1, 1]")
    after_round_one: dict[str, bytes] = {}

    def keep_first_checkpoint(record):  # round 2's record comes before round 2's checkpoint
        if record["round"] == 2:
            after_round_one["ckpt"] = s3.get_object(Bucket="fedray-runs", Key="exp/res1/checkpoint.pt")["Body"].read()

    full = run_experiment(cfg, "s3://fedray-runs/exp/res1", progress=lambda _: None, on_record=keep_first_checkpoint)
    # Put the run back where an interruption after round 1 would have left it.
    s3.put_object(Bucket="fedray-runs", Key="exp/res1/checkpoint.pt", Body=after_round_one["ckpt"])
    for name in _objects(s3_server, "fedray-runs", "exp/res1/"):
        if name.startswith(("summary", "model")):
            s3.delete_object(Bucket="fedray-runs", Key=f"exp/res1/{name}")

    resumed = resume_experiment("s3://fedray-runs/exp/res1", progress=lambda _: None)

    assert [r["round"] for r in resumed.rows] == [1, 2] and resumed.run_dir == "s3://fedray-runs/exp/res1"
    assert [n for n in full.state if not np.array_equal(full.state[n], resumed.state[n])] == []
    files = _objects(s3_server, "fedray-runs", "exp/res1/")
    assert json.loads(files["summary.json"])["rounds"] == 2
    assert len(files["metrics.jsonl"].splitlines()) == 2


def test_resume_of_an_s3_run_directory_refuses_data_replaced_since(tiny, s3_server, bucket, monkeypatch):
    """The checkpoint in the bucket records the data's fingerprint; a replaced dataset object is named, and the
    run directory is left as it was."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fedray.api import resume_experiment, run_experiment
    from fedray.config import ConfigError

    for var, value in (("AWS_ACCESS_KEY_ID", s3_server.key), ("AWS_SECRET_ACCESS_KEY", s3_server.secret),
                       ("AWS_ENDPOINT_URL", s3_server.endpoint), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    s3 = s3_server.client()
    emoji = open_dataset("emoji")
    s3.upload_file(emoji.path, "fedray-data", "moving/emoji.parquet")
    s3.upload_file(emoji.tokenizer, "fedray-data", "moving/tokenizer.json")
    source = "s3://fedray-data/moving/emoji.parquet"
    cfg = tiny(f"data.source={source}", "runtime.backend=local", *FAST)
    run_experiment(cfg, "s3://fedray-runs/exp/moved", progress=lambda _: None)
    s3.delete_object(Bucket="fedray-runs", Key="exp/moved/summary.json")  # interrupted after its checkpoint
    before = _objects(s3_server, "fedray-runs", "exp/moved/")
    table = pq.read_table(emoji.path)
    buf = pa.BufferOutputStream()
    pq.write_table(table.slice(0, table.num_rows - 1), buf)  # one row fewer
    s3.put_object(Bucket="fedray-data", Key="moving/emoji.parquet", Body=buf.getvalue().to_pybytes())

    with pytest.raises(ConfigError, match=r"^--resume s3://fedray-runs/exp/moved: the data changed since the "
                                          rf"checkpoint: dataset file {source}: \d+ bytes when the run started, "
                                          r"now \d+; restore the data"):
        resume_experiment("s3://fedray-runs/exp/moved", progress=lambda _: None)

    assert _objects(s3_server, "fedray-runs", "exp/moved/") == before
