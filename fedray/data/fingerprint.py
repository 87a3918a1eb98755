"""A fingerprint of the data a run reads, so that ``--resume`` can refuse data that changed under it.

Per file (the Parquet dataset, its tokenizer): where it is, its size, and a content hash. Small files
(up to ``FULL_HASH_BYTES``) are hashed whole. A larger Parquet file is hashed through its footer: the
footer holds every row group's row count, byte offsets, compressed sizes and per-column statistics
(min/max/null count), so replacing rows changes it, while reading it costs one small read even on S3.
Modification times are not used: copying or touching a file does not change its content.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from fedray.config.schema import StorageConfig
from fedray.data import storage as st
from fedray.data.dataset import DatasetInfo

FULL_HASH_BYTES = 64 << 20
_CHUNK = 8 << 20


def fingerprint(info: DatasetInfo) -> dict[str, Any]:
    """``{"dataset": {...}, "tokenizer": {...} | None}``: JSON- and checkpoint-ready plain values."""
    return {"dataset": file_fingerprint(info.path, info.storage, parquet=True),
            "tokenizer": file_fingerprint(info.tokenizer, info.storage) if info.tokenizer else None}


def file_fingerprint(path: str, storage: StorageConfig | None = None, parquet: bool = False) -> dict[str, Any]:
    """``{"path", "size", "hash", "method"}``; ``method`` is ``sha256`` (whole file) or ``parquet-footer``."""
    with _open(path, storage) as f:
        size = f.seek(0, 2)
        f.seek(0)
        digest = hashlib.sha256()
        if size <= FULL_HASH_BYTES or not parquet:
            while block := f.read(_CHUNK):
                digest.update(block)
            method = "sha256"
        else:
            f.seek(size - 8)
            tail = f.read(8)  # <footer length: uint32 little-endian> "PAR1"
            footer_len = struct.unpack("<I", tail[:4])[0]
            f.seek(max(0, size - 8 - footer_len))
            digest.update(f.read(footer_len + 8))
            method = "parquet-footer"
    return {"path": path, "size": size, "hash": digest.hexdigest(), "method": method}


def compare(saved: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, one message per file (empty: the same data).

    A checkpoint without a fingerprint (written before fingerprints existed) compares as unchanged.
    """
    if not saved:
        return []
    out = []
    for role, label in (("dataset", "dataset file"), ("tokenizer", "tokenizer")):
        a, b = saved.get(role), now.get(role)
        if a is None and b is None:
            continue
        if a is None or b is None:
            out.append(f"{label}: the run had {a['path'] if a else 'none'}, now {b['path'] if b else 'none'}")
        elif a["size"] != b["size"]:
            out.append(f"{label} {b['path']}: {a['size']} bytes when the run started, now {b['size']}"
                       + (f" (then at {a['path']})" if a["path"] != b["path"] else ""))
        elif a["hash"] != b["hash"] or a["method"] != b["method"]:
            what = "content" if a["method"] == "sha256" else "Parquet footer (row groups, sizes, statistics)"
            out.append(f"{label} {b['path']}: same size, different {what} than when the run started"
                       + (f" (then at {a['path']})" if a["path"] != b["path"] else ""))
    return out


def _open(path: str, storage: StorageConfig | None) -> Any:
    """A seekable binary file object, local or s3:// (s3fs reads only the ranges asked for)."""
    if st.is_s3(path):
        try:
            return st.filesystem(storage).open(st.strip(path), "rb")
        except Exception as err:  # noqa: BLE001 - mapped to a StorageError naming bucket and endpoint
            raise st.explain(path, err, storage) from None
    return open(path, "rb")  # noqa: SIM115 - returned to a with-block
