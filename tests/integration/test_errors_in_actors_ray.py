"""Errors raised inside the actors of a real run on local Ray reach the user as one line with exit code 2: a bad row
that only a client finds (the driver checked its image column by headers only), a NaN loss in a client, and the
client host actor's data error with its fields."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedray.backend.actors import HostActor
from fedray.backend.errors import user_error
from fedray.cli import main
from fedray.config import load_config
from fedray.data import DataError, open_dataset
from fedray.data.convert import write_dataset
from fedray.data.validate import DECODE_BYTES, validate_rows
from fedray.plan import plan_data, plan_run

N, TRAIN, BAD = 40, 32, 5
RAY = ["--set", "runtime.backend=ray", "--set", "runtime.client_cpus=0.5"]


def _png(value: int, padding: int = 0) -> bytes:
    """An 8x8 RGB PNG; ``padding`` random bytes in a private ancillary chunk after IHDR (decoders skip it)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 255 - value, 3 * value % 256)).save(buf, "PNG")
    data = buf.getvalue()
    if not padding:
        return data
    body = os.urandom(padding)  # random: zstd cannot shrink it, so the column's compressed size is real
    chunk = struct.pack(">I", len(body)) + b"prVt" + body + struct.pack(">I", zlib.crc32(b"prVt" + body))
    return data[:33] + chunk + data[33:]  # 8-byte signature + 25-byte IHDR chunk, then ours


@pytest.fixture(scope="module")
def past_validation(tmp_path_factory) -> str:
    """40 rows (32 train, 8 test), 8 per row group. Row 5's PNG is cut inside its pixel data: its size and colour
    type read fine, its pixels do not. The test rows carry random padding, so the image column of the rows a run reads
    is over ``DECODE_BYTES``: the driver then checks headers only and leaves the pixels to the clients."""
    pad = DECODE_BYTES // (N - TRAIN) + (1 << 20)
    images = [_png(i, pad if i >= TRAIN else 0) for i in range(N)]
    images[BAD] = images[BAD][:images[BAD].index(b"IDAT") + 6]  # two bytes into the pixel data
    path = tmp_path_factory.mktemp("past") / "data.parquet"
    write_dataset({"id": [f"r{i}" for i in range(N)], "split": ["train"] * TRAIN + ["test"] * (N - TRAIN),
                   "image": images, "text": [[f"item {i} of kind {i % 2}"] for i in range(N)]},
                  {"id": pa.string(), "split": pa.string(), "image": pa.binary(), "text": pa.list_(pa.string())},
                  {"name": "past"}, str(path), tokenizer_json=Path(open_dataset("emoji").tokenizer).read_text())
    pq.write_table(pq.read_table(path), path, compression="zstd", row_group_size=8)  # keeps the schema metadata
    return str(path)


def _overrides(path: str) -> list[str]:
    return [f"data.source={path}", "train.batch_size=4", "data.train_limit=null", "data.eval_limit=null",
            "train.rounds=[1, 0]"]


def test_a_bad_row_only_a_client_finds_stops_the_run_naming_client_row_and_column(ray_local, past_validation,
                                                                                   tmp_path, capsys):
    cfg = load_config(preset="tiny", overrides=_overrides(past_validation))
    plan = plan_data(cfg)  # the driver's validation passes: it read the headers, not the pixels
    assert not validate_rows(cfg, plan.info, np.concatenate([*plan.client_rows, plan.eval_rows])).decoded
    owner = next(c for c, rows in enumerate(plan.client_rows) if BAD in rows)
    out = tmp_path / "run"

    code = main(["run", "--preset", "tiny", *[a for o in _overrides(past_validation) for a in ("--set", o)], *RAY,
                 "--out", str(out)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"fedray: error: client {owner}: dataset file {past_validation}, row {BAD} (id 'r{BAD}'), "
                          "column 'image': cannot decode image (")
    assert err.count("\n") == 1 and "Traceback" not in err and "RayTaskError" not in err
    assert (out / "FAILED").is_file() and not (out / "metrics.jsonl").exists() and not (out / "summary.json").exists()


def test_the_host_actor_raises_a_data_error_whole_from_ready(ray_local, past_validation):
    """Kept by the constructor and raised from ready(): Ray carries the exception object, fields included
    (from a constructor it would keep only the text)."""
    ray = ray_local
    cfg = load_config(preset="tiny", overrides=_overrides(past_validation))
    plan = plan_run(cfg, cpus=2)
    host = next(h for h in range(len(plan.hosts)) if any(BAD in r for r in plan.host_rows(h).values()))
    owner = next(c for c, r in plan.host_rows(host).items() if BAD in r)
    actor = ray.remote(HostActor).options(num_cpus=0.1, max_restarts=0).remote(
        cfg, plan.info, plan.host_rows(host), "cpu", 1)

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(actor.ready.remote(), timeout=300)

    err = user_error(info.value)
    assert isinstance(err, DataError) and (err.client, err.row, err.column) == (owner, BAD, "image")
    ray.kill(actor)


def test_a_nan_loss_in_a_client_actor_names_round_and_client(ray_local, tmp_path, capsys):
    out = tmp_path / "run"

    code = main(["run", "--preset", "tiny", *RAY, "--set", "train.lr={image: 1e30, text: 1e30, head: 1e30}",
                 "--set", "train.rounds=[1, 0]", "--out", str(out)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fedray: error: non-finite train/loss (nan) in round 1, client ")
    assert ", local step " in err and err.count("\n") == 1 and "Traceback" not in err
    assert (out / "FAILED").is_file() and not (out / "summary.json").exists()
    assert not (out / "model.safetensors").exists() and not (out / "towers").exists()
