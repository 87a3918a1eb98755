"""Data fingerprints of s3:// datasets (moto_server): footer-only reads, a replaced object is detected."""

from __future__ import annotations

import pytest

from fedray.config.schema import StorageConfig
from fedray.data import fingerprint as fp
from fedray.data import open_dataset


@pytest.fixture
def storage(s3_server):
    return StorageConfig(endpoint_url=s3_server.endpoint, region="us-east-1", key=s3_server.key,
                         secret=s3_server.secret)


@pytest.mark.parametrize("footer_only", [False, True])
def test_s3_dataset_fingerprint_matches_until_the_object_is_replaced(s3_server, storage, monkeypatch, footer_only):
    if footer_only:  # as for an object larger than FULL_HASH_BYTES: only the footer is read
        monkeypatch.setattr(fp, "FULL_HASH_BYTES", 0)
    emoji, avdigits = open_dataset("emoji"), open_dataset("avdigits")
    s3 = s3_server.client()
    bucket = f"fp-{int(footer_only)}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(emoji.path, bucket, "d/data.parquet")
    s3.upload_file(emoji.tokenizer, bucket, "d/tokenizer.json")
    uri = f"s3://{bucket}/d/data.parquet"
    saved = fp.fingerprint(open_dataset(uri, storage))

    again = fp.fingerprint(open_dataset(uri, storage))
    s3.upload_file(avdigits.path, bucket, "d/data.parquet")  # replaced under the run
    now = fp.fingerprint(open_dataset(uri, storage))

    assert saved["tokenizer"]["path"] == f"s3://{bucket}/d/tokenizer.json"
    assert fp.compare(saved, again) == []
    assert fp.compare(saved, now) == [f"dataset file {uri}: {saved['dataset']['size']} bytes when the run started, "
                                      f"now {now['dataset']['size']}"]
