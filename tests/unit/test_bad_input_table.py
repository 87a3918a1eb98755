"""What fedray rejects, through the real CLI: one row per case, the message a user sees, nothing written.

Cluster cases (unreachable address, dashboard URL, malformed address, auth failure) need sockets or a real
cluster and live in tests/integration/test_connect.py and test_job_submit.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedray.api import run_experiment
from fedray.cli import main
from fedray.config import load_config

TINY = ["run", "--preset", "tiny", "--set", "runtime.backend=local"]


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
    return root


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
     "dataset '{root}/nope.parquet': no Parquet file there; embedded sets are emoji, avdigits"),
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
