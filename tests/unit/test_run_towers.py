"""Every finished run leaves its towers as ``towers/<modality>``: the export of its final model, loadable with
``AutoModel.from_pretrained``, readable like the run's other files; an interrupted end is redone on --resume."""

from __future__ import annotations

import json
import shutil
import stat

import numpy as np
import torch
from transformers import AutoModel

from fedray.api import resume_experiment, run_experiment
from fedray.config import load_config
from fedray.model.export import TOWER_FILE, export_run
from fedray.plan import plan_run
from fedray.rundir import FILE_MODE

RUN = ["runtime.backend=local", "data.num_clients=1", "data.train_limit=32", "data.eval_limit=8",
       "train.batch_size=16", "train.rounds=[1, 1]", "runtime.checkpoint_every=1"]


def test_a_run_directory_holds_the_export_of_its_final_model(tmp_path):
    cfg = load_config(preset="tiny", overrides=RUN)
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    towers = tmp_path / "run" / "towers"
    export_run(cfg, plan_run(cfg).info, result.state, tmp_path / "again")

    assert sorted(p.name for p in towers.iterdir()) == ["image", "text"]
    for m in ("image", "text"):
        names = sorted(p.name for p in (towers / m).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "again" / m).iterdir()) and TOWER_FILE in names
        for name in names:
            assert (towers / m / name).read_bytes() == (tmp_path / "again" / m / name).read_bytes(), (m, name)
            assert stat.S_IMODE((towers / m / name).stat().st_mode) == FILE_MODE, (m, name)
    text = AutoModel.from_pretrained(towers / "text")  # the trained embeddings, not the seed's
    assert torch.equal(text.get_input_embeddings().weight.detach(),
                       torch.from_numpy(result.state["towers.text.embeddings.word_embeddings.weight"]))
    assert json.loads((towers / "text" / TOWER_FILE).read_text())["depth"] == cfg.model.towers["text"].num_layers
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_resume_after_an_interrupted_end_writes_the_towers_again(tmp_path):
    cfg = load_config(preset="tiny", overrides=RUN)
    full = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    run = tmp_path / "run"
    # Killed while finishing: after the last checkpoint and part of the export, before summary.json.
    (run / "summary.json").unlink()
    shutil.rmtree(run / "towers" / "text")
    (run / "towers" / "image" / "config.json").write_text("{half")
    (run / ".towers.k3j_9x2a").mkdir()  # write_tree's temp directory

    resumed = resume_experiment(str(run), progress=lambda _: None)

    assert [n for n in full.state if not np.array_equal(full.state[n], resumed.state[n])] == []
    assert sorted(p.name for p in (run / "towers").iterdir()) == ["image", "text"]
    assert json.loads((run / "towers" / "image" / "config.json").read_text())["model_type"]
    assert AutoModel.from_pretrained(run / "towers" / "text") is not None
    assert not (run / ".towers.k3j_9x2a").exists() and (run / "summary.json").is_file()
