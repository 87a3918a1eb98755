"""A device trace read from a real S3-compatible server (moto_server), with the run's data.storage settings."""

from __future__ import annotations

import pytest

from fedray.config import load_config
from fedray.data.storage import StorageError
from fedray.devices import build_devices

CSV = b"client,device,memory_mib,gflops,downlink_mbps,uplink_mbps,availability\n" \
      b"0,phone,2048,15,39.18,11.63,0.5\n1,pi,1536,8,1,1,0.9\n2,phone,2048,15,39.18,11.63,0.5\n"


def _cfg(s3_server, trace: str, secret: str | None = None):
    return load_config(preset="tiny", overrides=[
        f"fleet.trace={trace}", "data.num_clients=3", f"data.storage.endpoint_url={s3_server.endpoint}",
        "data.storage.region=us-east-1", f"data.storage.key={s3_server.key}",
        f"data.storage.secret={secret or s3_server.secret}"])


def test_trace_from_s3_maps_row_i_to_client_i(s3_server):
    s3_server.client().create_bucket(Bucket="fedray-fleets")
    s3_server.client().put_object(Bucket="fedray-fleets", Key="traces/devices.csv", Body=CSV)
    cfg = _cfg(s3_server, "s3://fedray-fleets/traces/devices.csv")

    devices = build_devices(cfg.fleet, cfg.data.num_clients, cfg.train.seed, cfg.data.storage)

    assert devices.device == ("phone", "pi", "phone")
    assert devices.flops_per_s.tolist() == [15e9, 8e9, 15e9] and devices.availability.tolist() == [0.5, 0.9, 0.5]
    assert devices.source == "trace s3://fedray-fleets/traces/devices.csv"


def test_missing_trace_object_and_wrong_credentials_are_named(s3_server):
    s3_server.client().create_bucket(Bucket="fedray-fleets2")
    missing = _cfg(s3_server, "s3://fedray-fleets2/nope.csv")
    with pytest.raises(StorageError, match="fleet trace s3://fedray-fleets2/nope.csv: no such object in bucket"):
        build_devices(missing.fleet, 3, 42, missing.data.storage)
    wrong = _cfg(s3_server, "s3://fedray-fleets2/nope.csv", secret="wrong-secret")
    with pytest.raises(StorageError, match="access denied to bucket 'fedray-fleets2'") as err:
        build_devices(wrong.fleet, 3, 42, wrong.data.storage)
    assert "wrong-secret" not in str(err.value)
