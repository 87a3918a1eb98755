"""Run directories: files with normal permissions, and no stray temp files after an interrupted write."""

from __future__ import annotations

import os
import stat

import pytest

from fedray.rundir import RunDir, clean_strays


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_run_files_get_normal_permissions_not_0600(tmp_path, umask_022):
    run = RunDir.create(str(tmp_path / "run"), "x")

    run.write_text("config.yaml", "a: 1\n")
    run.write_bytes("checkpoint.pt", b"\x00\x01")
    run.append_row({"round": 1})

    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_a_dataset_written_by_the_converters_is_readable_by_others(tmp_path, umask_022):
    import pyarrow as pa

    from fedray.data.convert import write_dataset

    write_dataset({"id": ["a"], "split": ["train"]}, {"id": pa.string(), "split": pa.string()}, {"name": "x"},
                  str(tmp_path / "d.parquet"))

    assert stat.S_IMODE((tmp_path / "d.parquet").stat().st_mode) == 0o644


def test_resume_removes_what_a_kill_during_a_checkpoint_write_left(tmp_path):
    run = RunDir.create(str(tmp_path / "run"), "x")
    run.write_bytes("checkpoint.pt", b"the good checkpoint")
    (tmp_path / "run" / ".checkpoint.pt.k3j_9x2a").write_bytes(b"half a checkpoint")  # killed mid-write
    (tmp_path / "run" / ".metrics.jsonl.abcdefgh").write_text("{")
    (tmp_path / "run" / ".notes").write_text("a user's file: not ours")

    RunDir.reopen(str(tmp_path / "run"), rows=[{"round": 1}])

    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [".notes", "checkpoint.pt", "metrics.jsonl"]
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"the good checkpoint"


def test_clean_strays_names_what_it_removed(tmp_path):
    (tmp_path / ".model.pt.12345678").write_bytes(b"")
    (tmp_path / "model.pt").write_bytes(b"")

    assert clean_strays(tmp_path) == [".model.pt.12345678"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
