"""Data fingerprints: an untouched dataset matches, a replaced one differs and the message says what changed."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedray.data import fingerprint as fp
from fedray.data import open_dataset
from fedray.data.convert import write_dataset


def _write(path, rows: range) -> str:
    tokenizer = open(open_dataset("emoji").tokenizer).read()
    write_dataset({"id": [f"r{i:03d}" for i in rows], "split": ["train"] * len(rows), "label": [i % 3 for i in rows]},
                  {"id": pa.string(), "split": pa.string(), "label": pa.int64()}, {"name": "x"}, str(path),
                  tokenizer_json=tokenizer)
    return str(path)


@pytest.fixture(params=["sha256", "parquet-footer"])
def method(request, monkeypatch):
    if request.param == "parquet-footer":  # as for a file larger than FULL_HASH_BYTES
        monkeypatch.setattr(fp, "FULL_HASH_BYTES", 0)
    return request.param


def test_an_untouched_or_merely_touched_file_matches(tmp_path, method):
    info = open_dataset(_write(tmp_path / "d.parquet", range(100)))
    saved = fp.fingerprint(info)
    os.utime(info.path, (1, 1))  # mtime is not content

    now = fp.fingerprint(open_dataset(info.path))

    assert saved["dataset"]["method"] == method
    assert fp.compare(saved, now) == []


def _write_plain(path, rows: range) -> str:
    """Uncompressed, fixed-width values: files of other rows have exactly the same size."""
    table = pa.table({"id": [f"r{i:03d}" for i in rows], "split": ["train"] * len(rows),
                      "label": [i % 3 for i in rows]}).replace_schema_metadata({"fedray": '{"name": "x"}'})
    pq.write_table(table, path, compression="none", use_dictionary=False)
    return str(path)


def test_a_replaced_file_with_the_same_schema_and_size_but_other_rows_differs(tmp_path, method):
    path = _write_plain(tmp_path / "d.parquet", range(100))
    saved = fp.fingerprint(open_dataset(path))
    _write_plain(tmp_path / "d.parquet", range(100, 200))  # same schema, same size, other ids and labels

    now = fp.fingerprint(open_dataset(path))

    assert now["dataset"]["size"] == saved["dataset"]["size"]
    what = "content" if method == "sha256" else "Parquet footer (row groups, sizes, statistics)"
    assert fp.compare(saved, now) == [f"dataset file {path}: same size, different {what} than when the run started"]


def test_a_changed_tokenizer_is_named(tmp_path):
    path = _write(tmp_path / "d.parquet", range(10))
    saved = fp.fingerprint(open_dataset(path))
    tok = tmp_path / "tokenizer.json"
    tok.write_text(tok.read_text().replace("face", "FACE"))  # same size, other vocabulary

    diff = fp.compare(saved, fp.fingerprint(open_dataset(path)))

    assert diff == [f"tokenizer {tok}: same size, different content than when the run started"]


def test_fewer_rows_report_both_sizes_and_a_missing_fingerprint_is_no_difference(tmp_path):
    path = _write(tmp_path / "d.parquet", range(100))
    saved = fp.fingerprint(open_dataset(path))
    _write(tmp_path / "d.parquet", range(50))

    diff = fp.compare(saved, fp.fingerprint(open_dataset(path)))

    assert diff == [f"dataset file {path}: {saved['dataset']['size']} bytes when the run started, now "
                    f"{os.path.getsize(path)}"]
    assert fp.compare(None, saved) == []  # a checkpoint from before fingerprints
