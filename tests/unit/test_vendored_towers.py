"""The pretrained towers vendored in fedray/data/embedded/towers: found by name, loaded offline through
``model.towers.<m>.checkpoint``, and fedray's tower feature is exactly the feature that was distilled."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from transformers import AutoModel

from fedray.config import ConfigError, load_config
from fedray.data.embedded.distill_towers import bert_forward, vit_forward
from fedray.model import build_model
from fedray.plan import plan_run

TOWERS = resources.files("fedray.data").joinpath("embedded", "towers")
IMAGE, TEXT = "vit-effnet", "bert-minilm"


def test_a_vendored_tower_is_found_by_name_and_fills_the_architecture():
    cfg = load_config(preset="pretrained")
    image, text = cfg.model.towers["image"], cfg.model.towers["text"]
    assert image.checkpoint == str(TOWERS.joinpath(IMAGE)) and text.checkpoint == str(TOWERS.joinpath(TEXT))
    assert (image.arch, text.arch) == ("vit", "bert")
    assert image.num_layers == cfg.train.stages * image.blocks_per_stage  # every block is appended by a stage
    assert text.num_layers == cfg.train.stages * text.blocks_per_stage


def test_an_unknown_tower_name_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.towers.image.checkpoint.*no-such-tower"):
        load_config(preset="pretrained", overrides=["model.towers.image.checkpoint=no-such-tower"])


@pytest.mark.parametrize("source", ["emoji", "openclipart"])
def test_fedray_tower_features_equal_the_distilled_students(source):
    """The students were regressed on CLS after an identity final LayerNorm (image) and the first token of
    the last block (text), on inputs scaled like fedray's loader: the towers fedray builds compute the same."""
    cfg = load_config(preset="pretrained", overrides=[f"data.source={source}", "data.eval_limit=16"])
    plan = plan_run(cfg)
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed).eval()
    from fedray.data.dataset import load_rows, split_rows

    rows, _ = split_rows(plan.info, "test")
    batch = load_rows(plan.info, rows[:16], cfg.model.towers["text"].max_length, caption=cfg.data.caption).batch(
        torch.arange(16))
    with torch.no_grad():
        image = model.towers["image"](batch)
        text = model.towers["text"](batch)
        raw = (batch["image"] + 1.0) * 127.5  # back to the uint8 pixels the distillation saw
        want_image = vit_forward(AutoModel.from_pretrained(TOWERS.joinpath(IMAGE)).eval(), {"image": raw.round()})
        want_text = bert_forward(AutoModel.from_pretrained(TOWERS.joinpath(TEXT)).eval(),
                                 {"ids": batch["text_ids"], "mask": batch["text_mask"]})
    np.testing.assert_allclose(image.numpy(), want_image.numpy(), atol=1e-4)
    np.testing.assert_allclose(text.numpy(), want_text.numpy(), atol=1e-4)
    assert plan.info.tokenizer == str(TOWERS.joinpath(TEXT, "tokenizer.json"))  # the student's own vocabulary
