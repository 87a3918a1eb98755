"""What fedray rejects, through the real CLI: one row per case, the message a user sees, nothing written.

Cluster cases (unreachable address, dashboard URL, malformed address, auth failure) need sockets or a real
cluster and live in tests/integration/test_connect.py and test_job_submit.py.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedray.api import run_experiment
from fedray.cli import main
from fedray.config import load_config
from fedray.data import open_dataset
from fedray.data.convert import write_dataset

TINY = ["run", "--preset", "tiny", "--set", "runtime.backend=local"]
# A small dataset ({root}/<case>/data.parquet, rows 0-31 train, 32-39 test): planted defects are in row 5.
DATA = [*TINY, "--set", "train.batch_size=4", "--set", "data.train_limit=null", "--set", "data.eval_limit=null",
        "--out", "{root}/never"]
AV = [*DATA, "--set", "model.towers={image: {arch: vit, hidden_size: 16, num_layers: 2, num_heads: 2, "
      "intermediate_size: 16, patch_size: 4}, audio: {arch: vit, hidden_size: 16, num_layers: 2, num_heads: 2, "
      "intermediate_size: 16, patch_size: 2}}", "--set", "train.lr={image: 0.001, audio: 0.001, head: 0.001}"]
N = 40


def _png(side: int = 8, mode: str = "RGB", value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side), value if mode == "L" else (value, 255 - value, 3 * value % 256)).save(buf, "PNG")
    return buf.getvalue()


def write_case(root: Path, name: str, *, av: bool = False, meta: dict[str, Any] | None = None,
               tokenizer: str | None = "emoji", **rows: dict[int, Any]) -> None:
    """``root/name/data.parquet``: a valid image+text (or image+audio) dataset with ``rows[col][i]`` replaced."""
    cols: dict[str, list[Any]] = {
        "id": [f"r{i}" for i in range(N)], "split": ["train"] * 32 + ["test"] * 8, "label": [i % 2 for i in range(N)],
        "image": [_png(value=7 * i) for i in range(N)],
    }
    types = {"id": pa.string(), "split": pa.string(), "label": pa.int64(), "image": pa.binary()}
    if av:
        cols["audio"] = [np.full((6, 4), i / N, np.float32).tolist() for i in range(N)]
        types["audio"] = pa.list_(pa.list_(pa.float32()))
    else:
        cols["text"] = [[f"item {i} of kind {i % 2}"] for i in range(N)]
        types["text"] = pa.list_(pa.string())
    for col, patch in rows.items():
        for i, value in patch.items():
            cols[col][i] = value
    tok = Path(open_dataset("emoji").tokenizer).read_text() if tokenizer == "emoji" else tokenizer
    write_dataset(cols, types, {"name": name, "label_names": ["a", "b"], **(meta or {})},
                  str(root / name / "data.parquet"), tokenizer_json=None if av else tok)


def _damage_first_page(path: Path, column: str) -> None:
    """Overwrite bytes inside the first data page header of ``column``: the footer stays readable."""
    chunk = next(c for rg in [pq.ParquetFile(path).metadata.row_group(0)] for c in
                 (rg.column(i) for i in range(rg.num_columns)) if c.path_in_schema.split(".")[0] == column)
    data = bytearray(path.read_bytes())
    data[chunk.data_page_offset + 2:chunk.data_page_offset + 40] = b"\xff" * 38
    path.write_bytes(bytes(data))


def _bad_data(root: Path) -> None:
    write_case(root, "img_null", image={5: None})
    write_case(root, "img_empty", image={5: b""})
    write_case(root, "img_garbage", image={5: b"\x89PNG not really"})
    write_case(root, "img_size", image={5: _png(16)})
    write_case(root, "img_1px", image={5: _png(1)})
    write_case(root, "img_gray", image={5: _png(mode="L")})
    write_case(root, "img_all_1px", image={i: _png(1) for i in range(N)})
    write_case(root, "cap_list_empty", text={5: []})
    write_case(root, "cap_list_null", text={5: None})
    write_case(root, "cap_blank", text={5: ["   "]})
    write_case(root, "cap_null", text={5: [None]})
    write_case(root, "label_neg", label={5: -1})
    write_case(root, "label_null", label={5: None})
    write_case(root, "no_tok", tokenizer=None)
    write_case(root, "bad_tok", tokenizer='{"version": "1.0", "model": ')
    write_case(root, "pages")
    _damage_first_page(root / "pages" / "data.parquet", "image")
    write_case(root, "audio_nan", av=True, audio={5: [[0.0, float("nan"), 0.0, 0.0]] * 6})
    write_case(root, "audio_huge", av=True, audio={5: [[3e38] * 4] * 6})
    write_case(root, "audio_shape", av=True, audio={5: [[0.0] * 3] * 6})
    write_case(root, "audio_std0", av=True, meta={"audio_mean": [0.0] * 4, "audio_std": [1.0, 0.0, 1.0, 1.0]})
    write_case(root, "meta_json")
    table = pq.read_table(root / "meta_json" / "data.parquet")
    pq.write_table(table.replace_schema_metadata({"fedray": "{not json"}), root / "meta_json" / "data.parquet")
    (root / "empty.yaml").write_text("# nothing here yet\n")
    (root / "dup.yaml").write_text("preset: tiny\ntrain:\n  method: lw\nmodel:\n  temperature: 0.1\ntrain:\n  rounds: [1, 1]\n")
    (root / "latin1.yaml").write_bytes("preset: tiny\nname: caf\xe9\n".encode("latin-1"))
    (root / "adir.yaml").mkdir()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs for the cases: bad files, a finished run, an interrupted one, a run dir without checkpoint."""
    root = tmp_path_factory.mktemp("bad")
    (root / "bad.yaml").write_text("train: [unclosed\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "notparquet.parquet").write_text("hello")
    pq.write_table(pa.table({"id": [1, 2]}), root / "nocols.parquet")
    (root / "afile").write_text("x")
    (root / "full").mkdir()
    (root / "full" / "old.txt").write_text("an earlier run")
    (root / "empty").mkdir()
    cfg = load_config(preset="tiny", overrides=["runtime.backend=local", "train.rounds=[1,0]"])
    run_experiment(cfg, str(root / "finished"), progress=lambda _: None)
    shutil.copytree(root / "finished", root / "interrupted")
    (root / "interrupted" / "summary.json").unlink()
    shutil.copytree(root / "interrupted", root / "corrupt")
    (root / "corrupt" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    _bad_data(root)
    _replaced_data(root)
    return root


def _replaced_data(root: Path) -> None:
    """A run on ``moving/data.parquet`` interrupted after its checkpoint, then the file replaced (one caption)."""
    write_case(root, "moving")
    cfg = load_config(preset="tiny", overrides=["runtime.backend=local", "train.rounds=[1,0]", "train.batch_size=4",
                                                "data.train_limit=null", "data.eval_limit=null",
                                                f"data.source={root}/moving/data.parquet"])
    run_experiment(cfg, str(root / "data_changed"), progress=lambda _: None)
    (root / "data_changed" / "summary.json").unlink()
    write_case(root, "moving", text={3: ["item 3 of kind 0"]})


# (case, argv after `fedray`, {root} = the files fixture's directory, expected message fragment)
CASES = [
    ("unknown preset", ["run", "--preset", "nope"], "unknown preset 'nope'; available:"),
    ("config file missing", ["run", "{root}/missing.yaml"], "config file {root}/missing.yaml: not found"),
    ("config file not YAML", ["run", "{root}/bad.yaml"], "config file {root}/bad.yaml: not valid YAML"),
    ("config not a mapping", ["run", "{root}/list.yaml"], "expected a mapping at the top level, got list"),
    ("unknown key", [*TINY, "--set", "train.metod=lw"], "config key 'train.metod': unknown key; valid keys here:"),
    ("wrong type", [*TINY, "--set", "train.batch_size=abc"], "config key 'train.batch_size': expected int, got 'abc'"),
    ("malformed override", [*TINY, "--set", "train.method"], "override 'train.method': expected KEY=VALUE"),
    ("unknown method", [*TINY, "--set", "train.method=sgd"], "config key 'train.method': unknown method 'sgd'"),
    ("participation out of range", [*TINY, "--set", "train.participation=1.5"],
     "config key 'train.participation': must be in (0, 1], got 1.5"),
    ("rounds vs stages", [*TINY, "--set", "train.rounds=[1,2,3]"],
     "config key 'train.rounds': has 3 entries but train.stages is 2"),
    ("total_rounds next to a rounds list", [*TINY, "--set", "train.total_rounds=8"],
     "config key 'train.total_rounds': 8 is not used when train.rounds is a list ([1, 1] runs 2 rounds)"),
    ("unknown strategy", [*TINY, "--set", "train.strategy=sgd"], "config key 'train.strategy': unknown strategy 'sgd'"),
    ("strategy parameter it does not take", [*TINY, "--set", "train.strategy={name: fedavgm, beta1: 0.5}"],
     "config key 'train.strategy.beta1': fedavgm takes no beta1; its parameters: server_lr, momentum"),
    ("tower cannot encode modality", [*TINY, "--set", "model.towers.text.arch=vit"],
     "config key 'model.towers.text.arch': 'vit' cannot encode text"),
    ("learning rate missing", [*TINY, "--set", "train.lr={image: 0.1, text: 0.1}"],
     "config key 'train.lr.head': missing; every tower and 'head' needs a learning rate"),
    ("min_completion out of range", [*TINY, "--set", "runtime.min_completion=0"],
     "config key 'runtime.min_completion': must be in (0, 1], got 0.0"),
    ("negative checkpoint interval", [*TINY, "--set", "runtime.checkpoint_every=-1"],
     "config key 'runtime.checkpoint_every': must be >= 0"),
    ("dataset not found", [*TINY, "--set", "data.source={root}/nope.parquet"],
     "dataset '{root}/nope.parquet': no Parquet file there; embedded sets are emoji, avdigits, openclipart"),
    ("dataset not Parquet", [*TINY, "--set", "data.source={root}/notparquet.parquet"],
     "dataset file {root}/notparquet.parquet: not a readable Parquet file"),
    ("dataset missing columns", [*TINY, "--set", "data.source={root}/nocols.parquet"],
     "dataset file {root}/nocols.parquet: missing column"),
    ("modality not in dataset", [*TINY, "--set", "model.towers.audio={arch: ast}", "--set", "train.lr.audio=0.001"],
     "config key 'model.towers.audio': dataset emoji has no audio column"),
    ("batch larger than a shard", [*TINY, "--set", "train.batch_size=512"],
     "config key 'train.batch_size': 512 is larger than client"),
    ("output not empty", [*TINY, "--out", "{root}/full"], "--out {root}/full: exists and is not empty"),
    ("output not creatable", [*TINY, "--out", "{root}/afile/run"], "--out {root}/afile/run: cannot create it"),
    ("resume: no such dir", ["run", "--resume", "{root}/nowhere"], "--resume {root}/nowhere: no such run directory"),
    ("resume: no checkpoint", ["run", "--resume", "{root}/empty"], "--resume {root}/empty: no checkpoint.pt in it"),
    ("resume: run finished", ["run", "--resume", "{root}/finished"],
     "--resume {root}/finished: the run already finished"),
    ("resume: damaged checkpoint", ["run", "--resume", "{root}/corrupt"],
     "--resume {root}/corrupt: checkpoint.pt is not a readable fedray checkpoint"),
    ("resume: different config", ["run", "--resume", "{root}/interrupted", *TINY[1:3], "--set", "train.seed=7"],
     "the checkpoint was written with a different config: train.rounds (checkpoint [1, 0], now [1, 1]), "
     "train.seed (checkpoint 42, now 7)"),
    ("resume with --out", ["run", "--resume", "{root}/interrupted", "--out", "{root}/x"],
     "--resume continues in RUN_DIR itself; do not combine it with --out"),
    ("fleet shares do not sum to 1", [*TINY, "--set", "fleet.classes={a: {memory_mib: 8, gflops: 1, downlink_mbps: 1, uplink_mbps: 1, share: 0.5}, b: {memory_mib: 8, gflops: 1, downlink_mbps: 1, uplink_mbps: 1, share: 0.4}}"],
     "config key 'fleet.classes': shares must sum to 1, got 0.9"),
    ("fleet bandwidth not positive", [*TINY, "--set", "fleet.classes={a: {memory_mib: 8, gflops: 1, downlink_mbps: 0, "
                                      "uplink_mbps: 1, share: 1.0}}"],
     "config key 'fleet.classes.a.downlink_mbps': must be a positive finite number, got 0"),
    ("fleet availability out of range", [*TINY, "--set", "fleet.classes={a: {memory_mib: 8, gflops: 1, downlink_mbps: 1, uplink_mbps: 1, share: 1.0, availability: 1.5}}"],
     "config key 'fleet.classes.a.availability': must be in [0, 1], got 1.5"),
    ("unknown fleet preset", [*TINY, "--set", "fleet.preset=nope"],
     "config key 'fleet.preset': unknown fleet preset 'nope'; available:"),
    ("unknown fleet key", [*TINY, "--set", "fleet.classes={a: {memory_mib: 8, gflops: 1, downlink_mbps: 1, uplink_mbps: 1, share: 1.0, ram: 4}}"],
     "config key 'fleet.classes.a.ram': unknown key"),
]

# Issue 13: config files and values, and data defects found by the driver before any actor starts.
CASES += [
    # config files and values (issue 13)
    ("config file empty", ["run", "{root}/empty.yaml"], "config file {root}/empty.yaml: is empty"),
    ("config key given twice", ["run", "{root}/dup.yaml"],
     "config file {root}/dup.yaml: duplicate key 'train' on lines 2 and 6"),
    ("config file not UTF-8", ["run", "{root}/latin1.yaml"], "config file {root}/latin1.yaml: not UTF-8 text"),
    ("config path is a directory", ["run", "{root}/adir.yaml"],
     "config file {root}/adir.yaml: is a directory, not a YAML file"),
    ("override value not YAML", [*TINY, "--set", "train.lr={image: [0.1"],
     "override 'train.lr={image: [0.1': not valid YAML"),
    ("override key given twice", [*TINY, "--set", "train.lr={image: 0.1, image: 0.2, text: 0.1, head: 0.1}"],
     "duplicate key 'image'"),
    ("infinite temperature", [*TINY, "--set", "model.temperature=.inf"],
     "config key 'model.temperature': must be a finite number, got inf"),
    ("NaN learning rate", [*TINY, "--set", "train.lr.head=.nan"], "config key 'train.lr.head'"),
    ("infinite round timeout", [*TINY, "--set", "runtime.round_timeout=.inf"],
     "config key 'runtime.round_timeout': must be a finite number, got inf"),
    ("negative seed", [*TINY, "--set", "train.seed=-1"], "config key 'train.seed': must be an integer in [0, 2**63), got -1"),
    ("seed beyond 2^64", [*TINY, "--set", "train.seed=18446744073709551616"],
     "config key 'train.seed': must be an integer in [0, 2**63)"),
    # data, found by the driver before any actor starts (issue 13); every defect is in row 5 (id 'r5')
    ("image bytes null", [*DATA, "--set", "data.source={root}/img_null/data.parquet"],
     "dataset file {root}/img_null/data.parquet, row 5 (id 'r5'), column 'image': null image bytes"),
    ("image bytes empty", [*DATA, "--set", "data.source={root}/img_empty/data.parquet"],
     "row 5 (id 'r5'), column 'image': empty image bytes"),
    ("image undecodable", [*DATA, "--set", "data.source={root}/img_garbage/data.parquet"],
     "dataset file {root}/img_garbage/data.parquet, row 5 (id 'r5'), column 'image': cannot decode image"),
    ("image of another size", [*DATA, "--set", "data.source={root}/img_size/data.parquet"],
     "row 5 (id 'r5'), column 'image': image is 16x16, but the dataset's images are 8x8"),
    ("image 1x1 among others", [*DATA, "--set", "data.source={root}/img_1px/data.parquet"],
     "row 5 (id 'r5'), column 'image': image is 1x1, but the dataset's images are 8x8"),
    ("grayscale among RGB", [*DATA, "--set", "data.source={root}/img_gray/data.parquet"],
     "row 5 (id 'r5'), column 'image': grayscale image among colour ones"),
    ("images smaller than a patch", [*DATA, "--set", "data.source={root}/img_all_1px/data.parquet"],
     "config key 'model.towers.image.patch_size': 8 is larger than the images of dataset"),
    ("caption list empty", [*DATA, "--set", "data.source={root}/cap_list_empty/data.parquet"],
     "row 5 (id 'r5'), column 'text': empty caption list"),
    ("caption list null", [*DATA, "--set", "data.source={root}/cap_list_null/data.parquet"],
     "row 5 (id 'r5'), column 'text': null caption list"),
    ("caption blank", [*DATA, "--set", "data.source={root}/cap_blank/data.parquet"],
     "row 5 (id 'r5'), column 'text': caption 0 (data.caption=0) is empty"),
    ("caption null", [*DATA, "--set", "data.source={root}/cap_null/data.parquet"],
     "row 5 (id 'r5'), column 'text': caption 0 (data.caption=0) is null"),
    ("label negative", [*DATA, "--set", "data.source={root}/label_neg/data.parquet", "--set",
                        "data.partition.kind=dirichlet"],
     "dataset file {root}/label_neg/data.parquet, row 5 (id 'r5'), column 'label': negative label -1"),
    ("label null", [*DATA, "--set", "data.source={root}/label_null/data.parquet", "--set",
                    "data.partition.kind=dirichlet"],
     "dataset file {root}/label_null/data.parquet, row 5 (id 'r5'), column 'label': null label"),
    ("tokenizer.json missing", [*DATA, "--set", "data.source={root}/no_tok/data.parquet"],
     "dataset {root}/no_tok/data.parquet: has a text column but no tokenizer.json beside it"),
    ("tokenizer.json broken", [*DATA, "--set", "data.source={root}/bad_tok/data.parquet"],
     "tokenizer {root}/bad_tok/tokenizer.json: not a readable tokenizer.json"),
    ("corrupt data page", [*DATA, "--set", "data.source={root}/pages/data.parquet"],
     "dataset file {root}/pages/data.parquet, row group 0 (rows 0..39), column 'image': cannot read it, the file "
     "is damaged"),
    ("metadata not JSON", [*DATA, "--set", "data.source={root}/meta_json/data.parquet"],
     "dataset file {root}/meta_json/data.parquet: schema metadata 'fedray' is not valid JSON"),
    ("audio NaN", [*AV, "--set", "data.source={root}/audio_nan/data.parquet"],
     "dataset file {root}/audio_nan/data.parquet, row 5 (id 'r5'), column 'audio': non-finite value nan"),
    ("audio 3e38", [*AV, "--set", "data.source={root}/audio_huge/data.parquet"],
     "row 5 (id 'r5'), column 'audio': value 3e+38 beyond +/-1e+15"),
    ("audio of another shape", [*AV, "--set", "data.source={root}/audio_shape/data.parquet"],
     "row 5 (id 'r5'), column 'audio': expected 6 x 4 (frames x features), got a frame of 3 features"),
    ("audio_std of zero", [*AV, "--set", "data.source={root}/audio_std0/data.parquet"],
     "dataset file {root}/audio_std0/data.parquet: schema metadata 'fedray'.audio_std is 0 for feature 1"),
]


# Issue 10 + 13: a checkpoint records the data's fingerprint; --resume refuses data replaced since.
CASES += [
    ("resume: data replaced", ["run", "--resume", "{root}/data_changed"],
     "--resume {root}/data_changed: the data changed since the checkpoint: dataset file {root}/moving/data.parquet: "),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_with_a_clear_message(files, capsys, argv, message):
    argv = [a.replace("{root}", str(files)) for a in argv]
    before = sorted(p.relative_to(files) for p in files.rglob("*"))

    code = main(argv)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fedray: error: ")
    assert message.replace("{root}", str(files)) in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before  # nothing written, nothing changed


def test_the_table_has_at_least_20_cases():
    assert len(CASES) >= 20


def test_output_dir_of_a_rejected_run_is_not_created(tmp_path, capsys):
    out = tmp_path / "never"

    assert main([*TINY, "--set", "train.batch_size=512", "--out", str(out)]) == 2

    assert not out.exists()
