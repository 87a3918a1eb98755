"""Every encoder family as a tower, in-process: groups, agreement with the library's own forward pass,
the ledger's FLOPs and parameters against the analytic count, pooling and input transforms."""

from __future__ import annotations

import pytest
import torch

from fedray.config import ConfigError, load_config
from fedray.config.families import FAMILIES
from fedray.model import InputSpec, build_model
from fedray.model.encoders import ENCODERS
from fedray.model.export import feature
from fedray.model.towers import ImageTransform
from fedray.resources import analytic
from fedray.resources.estimate import measure_stage
from fedray.schedules import build_schedule

INPUTS = InputSpec(channels=3, image_size=32, frames=32, features=13, vocab_size=100)
SMALL = "hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64"
IMAGE = ("vit", "deit", "clip_vision", "siglip_vision")
TEXT = ("bert", "roberta", "distilbert", "clip_text", "siglip_text")


def tiny_cfg(image: str = "vit", text: str = "bert", *overrides: str, other: str = "text"):
    """The tiny preset with the given image and text (or audio) tower families."""
    second = f"{other}: {{arch: {text}, {SMALL}" + (", max_length: 16}" if other == "text" else ", patch_size: 4}")
    img = f"image: {{arch: {image}, {SMALL}, patch_size: 8}}" if image != "efficientnet_lite0" else \
        "image: {arch: efficientnet_lite0, image_size: 32}"
    return load_config(preset="tiny", overrides=[f"model.towers={{{img}, {second}}}",
                                                 f"train.lr={{image: 0.001, {other}: 0.001, head: 0.001}}",
                                                 "train.batch_size=4", *overrides])


def _model(cfg):
    return build_model(cfg.model, {m: INPUTS for m in cfg.model.towers}, cfg.train.seed)


def _text(batch: int = 3, length: int = 16) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (batch, length), generator=gen)
    mask = (torch.arange(length) < torch.tensor([length, 9, 4])[:batch, None]).long()
    return {"text_ids": torch.where(mask.bool(), ids, 1), "text_mask": mask}  # pad id 1 = RoBERTa's padding_idx


def _image(batch: int = 3, size: int = 32) -> dict[str, torch.Tensor]:
    return {"image": torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1}


def test_the_registry_builds_every_family_of_the_config_table():
    assert set(ENCODERS) == set(FAMILIES)
    assert {m for f in FAMILIES.values() for m in f.modalities} == {"image", "text", "audio"}


@pytest.mark.parametrize("arch", IMAGE + TEXT + ("ast",))
def test_a_tower_computes_what_its_library_computes(arch):
    """embed -> run_blocks -> pool equals the transformers model's own forward on the same modules (masks,
    causality, final norms and pooling included)."""
    image, text, other = (arch, "bert", "text") if arch in IMAGE else \
        ("vit", arch, "text") if arch in TEXT else ("vit", arch, "audio")
    model = _model(tiny_cfg(image, text, other=other)).eval()
    name = "image" if arch in IMAGE else other
    tower = model.towers[name]
    assert tower.groups() == ["embed", "block.0", "block.1"] + (["final_norm"] if FAMILIES[arch].final_norm else [])
    with torch.no_grad():
        if name == "image":
            inputs = _image()
            out = tower.source(pixel_values=tower.transform(inputs["image"]))
            mask = None
        elif name == "text":
            inputs = _text()
            mask = inputs["text_mask"]
            out = tower.source(input_ids=inputs["text_ids"], attention_mask=mask)
        else:
            inputs = {"audio": torch.randn(3, 32, 13, generator=torch.Generator().manual_seed(2))}
            out, mask = tower.source(inputs["audio"]), None
        ours = tower(inputs)
        meta = {"pooling": tower.pooling, "norm_outside": "post_layernorm" if arch == "clip_vision" else None}
        theirs = feature(tower.source, meta, out.last_hidden_state, mask)
    assert ours.shape == (3, 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    if arch == "clip_vision":  # transformers' own pooled output is the same CLS feature
        torch.testing.assert_close(ours, out.pooler_output, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("image,text", [("deit", "roberta"), ("clip_vision", "clip_text"),
                                        ("siglip_vision", "siglip_text")])
def test_measured_flops_and_parameters_match_the_analytic_count(image, text):
    cfg = tiny_cfg(image, text, "train.method=lw")
    model = _model(cfg)
    counted: dict[str, int] = {}
    for n, p in model.named_parameters():
        counted[model.group_of(n)] = counted.get(model.group_of(n), 0) + p.numel()
    assert counted == analytic.group_params(cfg, INPUTS, 16)
    for stage in build_schedule(cfg):
        cost, _ = measure_stage(model, cfg, stage, INPUTS, torch.device("cpu"))
        assert cost.flops == analytic.step_flops(cfg, stage, INPUTS, 16, 4), (stage.index, image, text)


def test_mean_and_last_pooling_read_only_real_tokens():
    tower = _model(tiny_cfg("vit", "bert", "model.towers.text.pooling=mean")).towers["text"].eval()
    inputs = _text()
    with torch.no_grad():
        h, mask = tower.embed(inputs)
        h = tower.run_blocks(h, mask, 0, 2)
        mean = tower.pool(h, mask)
        tower.pooling = "last"
        last = tower.pool(h, mask)
    torch.testing.assert_close(mean[1], h[1, :9].mean(0))  # 9 real tokens in row 1
    assert torch.equal(last[2], h[2, 3]) and torch.equal(last[0], h[0, 15])
    padded = {**inputs, "text_ids": inputs["text_ids"].masked_fill(inputs["text_mask"] == 0, 7)}
    with torch.no_grad():  # what sits in padding does not change a mean-pooled feature
        tower.pooling = "mean"
        torch.testing.assert_close(tower(padded), mean)


def test_the_default_image_transform_is_the_identity_and_others_resize_and_normalise():
    x = _image()["image"]
    assert torch.equal(ImageTransform(None, (0.5,) * 3, (0.5,) * 3)(x), x)
    assert torch.equal(ImageTransform(32, (0.5,) * 3, (0.5,) * 3)(x), x)
    pixels = torch.tensor([0.0, 127.0, 255.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    tflite = ImageTransform(None, (127 / 255,) * 3, (128 / 255,) * 3)(pixels / 127.5 - 1)
    torch.testing.assert_close(tflite[0, 0, 0], torch.tensor([-127 / 128, 0.0, 1.0]))
    grey = ImageTransform(64, (0.5,) * 3, (0.5,) * 3)(x[:, :1])
    assert grey.shape == (3, 3, 64, 64) and torch.equal(grey[:, 0], grey[:, 2])


def test_image_towers_read_the_encoders_resolution_not_the_datasets():
    cfg = tiny_cfg("clip_vision", "bert", "model.towers.image.image_size=48")
    tower = _model(cfg).towers["image"]
    assert tower.transform.size == 48 and tower.transform.mean[0] == pytest.approx(0.4815, abs=1e-4)
    h, _ = tower.embed(_image(size=32))
    assert h.shape == (3, 37, 32)  # 6 x 6 patches of 8 px + CLS
    n, _ = analytic.tokens(cfg.model.towers["image"], "image", INPUTS, 16)
    assert n == 37


def test_efficientnet_tower_has_stem_stage_and_head_groups_and_4d_hidden_states():
    cfg = tiny_cfg("efficientnet_lite0", "bert")
    tower = _model(cfg).towers["image"].eval()
    assert (tower.num_layers, tower.hidden_size, cfg.model.towers["image"].hidden_size) == (8, 1280, 1280)
    assert tower.groups() == ["embed"] + [f"block.{i}" for i in range(8)]
    assert [len(s.blocks) for s in tower.blocks[:7]] == [1, 2, 2, 3, 3, 4, 1]
    with torch.no_grad():
        h, mask = tower.embed(_image())
        assert mask is None and h.shape == (3, 32, 16, 16)
        h = tower.run_blocks(h, None, 0, 4)
        assert h.shape == (3, 80, 2, 2)
        feat = tower.pool(h, None)  # below full depth: 80 channels, zero-padded to 1280
    assert feat.shape == (3, 1280) and torch.equal(feat[:, 80:], torch.zeros(3, 1200))
    torch.testing.assert_close(feat[:, :80], h.mean(dim=(2, 3)))
    with pytest.raises(NotImplementedError):
        analytic.step_flops(cfg, build_schedule(cfg)[0], INPUTS, 16, 4)


def test_family_options_are_checked_where_they_are_set():
    with pytest.raises(ConfigError, match=r"model\.towers\.image\.pooling.*efficientnet_lite0.*\('mean',\)"):
        tiny_cfg("efficientnet_lite0", "bert", "model.towers.image.pooling=first")
    with pytest.raises(ConfigError, match=r"model\.towers\.image\.hidden_size.*conflicts with arch efficientnet"):
        load_config(preset="tiny", overrides=["model.towers.image={arch: efficientnet_lite0, hidden_size: 64}"])
    with pytest.raises(ConfigError, match=r"model\.towers\.text\.arch.*'clip_vision' cannot encode text"):
        tiny_cfg("vit", "clip_vision")
    with pytest.raises(ConfigError, match=r"model\.towers\.text\.image_norm.*only image towers"):
        tiny_cfg("vit", "bert", "model.towers.text.image_norm=clip")
    with pytest.raises(ConfigError, match=r"model\.towers\.image\.checkpoint.*packaged.*efficientnet_lite0"):
        load_config(preset="tiny", overrides=["model.towers.image.checkpoint=packaged"])
    assert tiny_cfg("vit", "clip_text").model.towers["text"].pool == "last"  # causal: the last token saw everything


def test_the_prefix_cache_holds_feature_maps_and_changes_nothing(tiny):
    """A CNN's frozen prefix is cached as [N, C, H, W] and gives the same weights as recomputing it."""
    from fedray.client import ClientHost
    from fedray.plan import plan_run
    from fedray.server import Finished, InProcessFleet, build_server, run_rounds

    def run(cache: str):
        cfg = tiny("model.towers={image: {arch: efficientnet_lite0, image_size: 32}, "
                   f"text: {{arch: clip_text, {SMALL}, max_length: 16}}}}", "data.num_clients=2",
                   "data.train_limit=64", "train.batch_size=16", f"runtime.cache_prefix={cache}")
        plan = plan_run(cfg)
        hosts = [ClientHost(cfg, plan.info, plan.host_rows(h), threads=1) for h in range(len(plan.hosts))]
        ctx, evaluate, state = build_server(plan)
        (end,) = [e for e in run_rounds(state, ctx, InProcessFleet(hosts), evaluate, 0) if isinstance(e, Finished)]
        return end.outcome.state.tensors, hosts

    before = torch.get_num_threads()
    try:
        on, hosts = run("on")
        off, _ = run("off")
    finally:
        torch.set_num_threads(before)
    entry = next(iter(hosts[0].cache.entries.values()))
    assert entry["image"].hidden.shape[1:] == (80, 2, 2) and entry["image"].start == 4  # stem + 4 stages frozen
    assert entry["text"].mask.shape[1:] == (16,)
    assert sum(h.cache.fills for h in hosts) == 2
    for name in off:
        assert torch.equal(torch.from_numpy(on[name]), torch.from_numpy(off[name])), name


def test_fedray_resources_measures_a_cnn_tower_without_a_formula():
    from fedray.resources.estimate import Workload, estimate, to_text

    cfg = tiny_cfg("efficientnet_lite0", "siglip_text", "train.batch_size=4")
    report = estimate(cfg, Workload(INPUTS, shard_size=8))
    lw, fedmml = report["methods"]["lw"], report["methods"]["fedmml"]
    assert lw["analytic_flops"] is None and 0 < lw["flops"] < fedmml["flops"]
    assert 0 < lw["comm_bytes"] < fedmml["comm_bytes"] and lw["peak_memory_bytes"] < fedmml["peak_memory_bytes"]
    assert "| lw |" in to_text(report)
