"""Where data and run directories live: local paths or ``s3://bucket/key`` URIs (through s3fs).

Credentials come from ``data.storage`` or, when unset there, the standard AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``). They are resolved once on the driver so that every client
reads with the same settings, and they never appear in a repr, an error message or the run directory.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from fedray.config.schema import StorageConfig


class StorageError(ValueError):
    """An s3:// location cannot be reached; the message names the bucket/key and the endpoint."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def resolve(storage: StorageConfig | None) -> StorageConfig:
    """Fill unset fields from the standard AWS environment variables."""
    s = storage or StorageConfig()
    env = os.environ.get
    return replace(s, endpoint_url=s.endpoint_url or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL"),
                   region=s.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
                   key=s.key or env("AWS_ACCESS_KEY_ID"), secret=s.secret or env("AWS_SECRET_ACCESS_KEY"))


def filesystem(storage: StorageConfig | None) -> Any:
    """An ``s3fs.S3FileSystem`` for these settings (a fresh instance: no cross-run listing cache)."""
    import s3fs  # imported only when an s3:// URI is used

    s = resolve(storage)
    client: dict[str, Any] = {}
    if s.endpoint_url:
        client["endpoint_url"] = s.endpoint_url
    if s.region:
        client["region_name"] = s.region
    return s3fs.S3FileSystem(key=s.key, secret=s.secret, token=os.environ.get("AWS_SESSION_TOKEN") if not s.key else None,
                             client_kwargs=client, skip_instance_cache=True, use_listings_cache=False)


def strip(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key`` (the path s3fs and pyarrow expect)."""
    return uri[len("s3://"):] if is_s3(uri) else uri


def explain(uri: str, err: BaseException, storage: StorageConfig | None, what: str = "dataset") -> StorageError:
    """A StorageError that says which bucket/key failed and why, without credentials."""
    s = resolve(storage)
    bucket = strip(uri).split("/", 1)[0]
    where = f"endpoint {s.endpoint_url}" if s.endpoint_url else "the default AWS endpoint"
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, PermissionError) or any(code in text for code in
                                                 ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden")):
        why = (f"access denied to bucket '{bucket}' at {where}; check data.storage.key/secret or "
               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    elif "NoSuchBucket" in text or "bucket does not exist" in text:
        why = f"bucket '{bucket}' does not exist at {where}"
    elif isinstance(err, FileNotFoundError):
        why = f"no such object in bucket '{bucket}' at {where}"
    else:
        why = f"cannot reach it at {where} ({type(err).__name__})"
    return StorageError(f"{what} {uri}: {why}")
