"""Bad datasets and settings fail before training, with a message that names the culprit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from fedray.config import ConfigError
from fedray.data import DataError, load_rows, open_dataset
from fedray.data.convert import write_dataset


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def write_av(path: Path, n: int = 12, *, bad_image: int | None = None, short_audio: int | None = None,
             drop: str | None = None) -> str:
    """A tiny image+audio dataset (10 train / 2 test rows) with one planted defect."""
    cols = {
        "id": [str(i) for i in range(n)], "split": ["train"] * (n - 2) + ["test"] * 2,
        "label": [i % 2 for i in range(n)],
        "image": [b"this is not a png" if i == bad_image else _png(10 * i) for i in range(n)],
        "audio": [np.full((3 if i == short_audio else 6, 4), i, np.float32).tolist() for i in range(n)],
    }
    types = {"id": pa.string(), "split": pa.string(), "label": pa.int64(), "image": pa.binary(),
             "audio": pa.list_(pa.list_(pa.float32()))}
    if drop:
        cols.pop(drop)
    write_dataset(cols, types, {"name": "av", "label_names": ["a", "b"]}, str(path))
    return str(path)


def test_missing_column_names_file_and_column(tmp_path):
    path = write_av(tmp_path / "nosplit.parquet", drop="split")
    with pytest.raises(DataError, match=r"nosplit\.parquet.*missing column 'split'"):
        open_dataset(path)


def test_tower_without_column_names_the_tower(tiny, tmp_path):
    from fedray.plan import plan_run

    path = write_av(tmp_path / "av.parquet")
    with pytest.raises(ConfigError, match=r"model\.towers\.text.*no text column"):
        plan_run(tiny(f"data.source={path}"))


def test_corrupt_parquet_names_the_file(tmp_path):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1" + b"\x00garbage" * 20)
    with pytest.raises(DataError, match=r"corrupt\.parquet: not a readable Parquet file"):
        open_dataset(str(bad))


def test_empty_file_and_empty_split(tmp_path, tiny):
    from fedray.plan import plan_run

    empty = tmp_path / "empty.parquet"
    write_dataset({"id": [], "split": [], "image": []}, {"id": pa.string(), "split": pa.string(), "image": pa.binary()},
                  {"name": "empty"}, str(empty))
    with pytest.raises(DataError, match=r"empty\.parquet: has no rows"):
        open_dataset(str(empty))
    only_test = tmp_path / "onlytest.parquet"
    write_dataset({"id": ["a", "b"], "split": ["test", "test"], "image": [_png(1), _png(2)], "text": [["x"], ["y"]]},
                  {"id": pa.string(), "split": pa.string(), "image": pa.binary(), "text": pa.list_(pa.string())},
                  {"name": "onlytest"}, str(only_test))
    (tmp_path / "tokenizer.json").write_text(Path(open_dataset("emoji").tokenizer).read_text())
    with pytest.raises(ConfigError, match=r"onlytest\.parquet has no rows in split 'train'"):
        plan_run(tiny(f"data.source={only_test}"))


def test_undecodable_image_names_row_and_column(tmp_path):
    info = open_dataset(write_av(tmp_path / "av.parquet", bad_image=4))
    with pytest.raises(DataError, match=r"av\.parquet, row 4 \(id '4'\), column 'image': cannot decode"):
        load_rows(info, np.arange(10), max_length=8)


def test_audio_of_wrong_shape_names_row(tmp_path):
    info = open_dataset(write_av(tmp_path / "av.parquet", short_audio=7))
    with pytest.raises(DataError, match=r"row 7 \(id '7'\), column 'audio': expected 6 x 4 \(frames x features\), got 3 frames"):
        load_rows(info, np.arange(10), max_length=8)


def test_bad_image_fails_the_run_before_its_directory_is_created(tmp_path, tiny):
    from fedray.api import run_experiment

    path = write_av(tmp_path / "av.parquet", bad_image=3)
    cfg = tiny(f"data.source={path}", "model.towers={image: {arch: vit, hidden_size: 16, num_layers: 2, num_heads: 2, "
               "intermediate_size: 16, patch_size: 4}, audio: {arch: vit, hidden_size: 16, num_layers: 2, "
               "num_heads: 2, intermediate_size: 16, patch_size: 2}}", "train.lr={image: 0.001, audio: 0.001, head: 0.001}",
               "runtime.backend=local", "train.batch_size=4", "data.train_limit=null", "data.eval_limit=null")
    with pytest.raises(DataError, match=r"row 3 \(id '3'\), column 'image'"):
        run_experiment(cfg, str(tmp_path / "run"), progress=lambda line: None)
    assert not (tmp_path / "run").exists()  # found by the driver's validation: no run directory, no round


def test_nonpositive_beta_names_the_key(tiny):
    with pytest.raises(ConfigError, match=r"data\.partition\.beta.*must be > 0"):
        tiny("data.partition.beta=0")
    with pytest.raises(ConfigError, match=r"data\.partition\.beta"):
        tiny("data.partition.beta=-1")


def test_more_clients_than_samples_names_the_key(tiny):
    from fedray.plan import plan_run

    with pytest.raises(ConfigError, match=r"data\.num_clients.*300 clients but only 256"):
        plan_run(tiny("data.num_clients=300"))
    with pytest.raises(ConfigError, match=r"data\.num_clients.*300 clients x min_size"):
        plan_run(tiny("data.num_clients=300", "data.partition.kind=dirichlet"))


def test_classification_without_labels_is_a_config_error(tiny, tmp_path):
    from fedray.plan import plan_run

    path = write_av(tmp_path / "nolabel.parquet", drop="label")
    cfg = tiny(f"data.source={path}", "model.task=classification", "model.towers={image: {arch: vit}, audio: {arch: vit}}",
               "train.lr={image: 0.001, audio: 0.001, head: 0.001}")
    with pytest.raises(ConfigError, match=r"model\.task.*'label' column.*nolabel\.parquet"):
        plan_run(cfg)


def test_label_outside_label_names_is_named(tiny, tmp_path):
    from fedray.plan import plan_run

    path = tmp_path / "badlabel.parquet"
    write_dataset({"id": ["a", "b"], "split": ["train", "test"], "label": [0, 5], "image": [_png(1), _png(2)],
                   "audio": [[[0.0]], [[1.0]]]},
                  {"id": pa.string(), "split": pa.string(), "label": pa.int64(), "image": pa.binary(),
                   "audio": pa.list_(pa.list_(pa.float32()))}, {"name": "x", "label_names": ["a", "b"]}, str(path))
    cfg = tiny(f"data.source={path}", "model.task=classification", "model.towers={image: {arch: vit}, audio: {arch: vit}}",
               "train.lr={image: 0.001, audio: 0.001, head: 0.001}")
    with pytest.raises(ConfigError, match=r"badlabel\.parquet, column 'label': values must be in \[0, 2\).*0\.\.5"):
        plan_run(cfg)
