"""The ``pretrained`` preset and the text tower vendored for it (fedray/data/embedded/towers/bert-minilm):
found by name, loaded offline, equal to a fresh ``from_pretrained``, and the preset plans the paper's setting."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from transformers import AutoModel

from fedray.config import ConfigError, load_config
from fedray.data.dataset import load_rows, split_rows
from fedray.data.embedded.distill_towers import bert_forward
from fedray.model import build_model
from fedray.plan import plan_run
from fedray.schedules import build_schedule

TOWERS = resources.files("fedray.data").joinpath("embedded", "towers")
TEXT = "bert-minilm"


def test_the_vendored_text_tower_is_found_by_name_and_fills_the_architecture():
    cfg = load_config(preset="pretrained")
    image, text = cfg.model.towers["image"], cfg.model.towers["text"]
    assert text.checkpoint == str(TOWERS.joinpath(TEXT)) and text.arch == "bert"
    assert (text.hidden_size, text.num_layers) == (96, 4)  # from its config.json, not from the preset
    assert (image.arch, image.checkpoint) == ("efficientnet_lite0", "packaged")
    for tower in (image, text):  # every block is appended by some stage
        assert tower.num_layers == cfg.train.stages * tower.blocks_per_stage


def test_only_towers_the_preset_uses_are_vendored():
    assert sorted(p.name for p in TOWERS.iterdir() if p.is_dir()) == [TEXT]
    assert {p.name for p in TOWERS.joinpath(TEXT).iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}


def test_an_unknown_tower_name_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.towers.text.checkpoint.*no-such-tower"):
        load_config(preset="pretrained", overrides=["model.towers.text.checkpoint=no-such-tower"])


def test_the_preset_plans_the_skewed_paper_setting():
    """LW's first half gets no rounds, so its frozen prefix keeps the pretrained weights; FedMML trains the
    whole model for the same total rounds."""
    cfg = load_config(preset="pretrained")
    plan = plan_run(cfg)
    assert plan.info.name == "emoji" and len(plan.client_rows) == cfg.data.num_clients
    lw = build_schedule(cfg)
    assert [s.rounds for s in lw] == [0, 0, 3, 9]
    assert lw[-1].depths == {"image": 8, "text": 4}
    assert {g for g in lw[-1].frozen if g.startswith("image")} >= {"image.embed", "image.block.0"}
    fedmml = build_schedule(load_config(preset="pretrained", overrides=["train.method=fedmml"]))
    assert [s.rounds for s in fedmml] == [cfg.train.total_rounds] and not fedmml[0].frozen


@pytest.mark.parametrize("source", ["emoji", "openclipart"])
def test_fedray_text_tower_equals_a_fresh_from_pretrained(source):
    """Offline (conftest sets HF_HUB_OFFLINE): fedray's text feature is the student's first token of the last
    block, exactly what it was distilled on, computed by transformers' own loading of the vendored files."""
    cfg = load_config(preset="pretrained", overrides=[f"data.source={source}"])
    plan = plan_run(cfg)
    assert plan.info.tokenizer == str(TOWERS.joinpath(TEXT, "tokenizer.json"))  # the student's own vocabulary
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed).eval()
    rows, _ = split_rows(plan.info, "test")
    batch = load_rows(plan.info, rows[:16], cfg.model.towers["text"].max_length, caption=cfg.data.caption).batch(
        torch.arange(16))
    with torch.no_grad():
        got = model.towers["text"](batch)
        want = bert_forward(AutoModel.from_pretrained(TOWERS.joinpath(TEXT)).eval(),
                            {"ids": batch["text_ids"], "mask": batch["text_mask"]})
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
