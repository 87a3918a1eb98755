"""Exported towers load back with their own library and give the trained tower's features."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel

from fedray.api import run_experiment
from fedray.config import ConfigError, load_config
from fedray.model import build_model
from fedray.model.export import TOWER_FILE, export_run, feature
from fedray.plan import plan_run
from fedray.schedules import build_schedule

SMALL = "hidden_size: 32, num_heads: 2, intermediate_size: 64"
RUN = ["data.num_clients=1", "data.train_limit=32", "data.eval_limit=8", "train.batch_size=16",
       "runtime.backend=local", "train.lr={image: 0.01, text: 0.01, head: 0.01}"]


def _trained(tmp_path, image: str, text: str, *extra: str):
    cfg = load_config(preset="tiny", overrides=[*RUN, *extra, f"model.towers={{image: {image}, text: {text}}}"])
    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)
    plan = plan_run(cfg)
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in result.state.items()})
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items() if ".blocks." in k)  # trained
    model.set_depths(build_schedule(cfg)[-1].depths)
    return cfg, plan.info, result.state, model.eval()


@pytest.mark.parametrize("image,text,extra", [
    (f"{{arch: clip_vision, {SMALL}, num_layers: 2, patch_size: 8}}", f"{{arch: clip_text, {SMALL}, num_layers: 2, "
     f"max_length: 16}}", ()),
    # 3-block towers grown 1 block per stage over 2 stages: the third block was never present, so it is not exported.
    (f"{{arch: siglip_vision, {SMALL}, num_layers: 3, patch_size: 8, blocks_per_stage: 1}}",
     f"{{arch: bert, {SMALL}, num_layers: 3, max_length: 16, pooling: mean, blocks_per_stage: 1}}", ()),
])
def test_an_exported_tower_loads_with_automodel_and_gives_the_trained_towers_feature(tmp_path, image, text, extra):
    cfg, info, state, model = _trained(tmp_path, image, text, *extra)
    paths = export_run(cfg, info, state, tmp_path / "towers")
    assert [p.name for p in paths] == ["image", "text"]
    assert (tmp_path / "towers" / "text" / "tokenizer.json").read_bytes() == open(info.tokenizer, "rb").read()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ids = torch.randint(3, 100, (3, 16), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(16) < torch.tensor([[16], [5], [9]])).long()
    for path, tower in zip(paths, model.towers.values()):
        meta = json.loads((path / TOWER_FILE).read_text())
        loaded = AutoModel.from_pretrained(path).eval()
        depth = model.towers[path.name].depth
        assert meta["depth"] == depth == loaded.config.num_hidden_layers
        with torch.no_grad():
            if path.name == "image":
                out = loaded(pixel_values=tower.transform(images))
                ours, theirs = tower({"image": images}), feature(loaded, meta, out.last_hidden_state)
            else:
                out = loaded(input_ids=ids, attention_mask=mask)
                ours = tower({"text_ids": ids, "text_mask": mask})
                theirs = feature(loaded, meta, out.last_hidden_state, mask)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert model.towers["image"].num_layers == len(model.towers["image"].blocks)  # restored after the export
    with pytest.raises(ConfigError, match="never overwrites"):
        export_run(cfg, info, state, tmp_path / "towers")


def test_an_exported_tower_is_a_checkpoint_for_the_next_run(tmp_path):
    cfg, info, state, model = _trained(tmp_path, f"{{arch: deit, {SMALL}, num_layers: 2, patch_size: 8}}",
                                       f"{{arch: roberta, {SMALL}, num_layers: 2, max_length: 16}}")
    export_run(cfg, info, state, tmp_path / "towers")
    image, text = tmp_path / "towers/image", tmp_path / "towers/text"
    again = load_config(preset="tiny", overrides=[
        f"model.towers={{image: {{checkpoint: {image}}}, text: {{checkpoint: {text}, max_length: 16}}}}"])
    assert (again.model.towers["image"].arch, again.model.towers["text"].arch) == ("deit", "roberta")
    info2 = plan_run(again).info
    assert info2.tokenizer == str(tmp_path / "towers/text/tokenizer.json")
    rebuilt = build_model(again.model, {m: info2.inputs for m in again.model.towers}, 0)
    for name in ("image", "text"):
        ours, theirs = model.towers[name].blocks.state_dict(), rebuilt.towers[name].blocks.state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_an_exported_efficientnet_loads_into_the_package(tmp_path):
    eff = pytest.importorskip("efficientnet_lite_pytorch")
    cfg, info, state, model = _trained(tmp_path, "{arch: efficientnet_lite0, image_size: 32}",
                                       f"{{arch: distilbert, {SMALL}, num_layers: 2, max_length: 16}}")
    (path, _) = export_run(cfg, info, state, tmp_path / "towers")
    net = eff.EfficientNet.from_name("efficientnet-lite0", image_size=32)
    net.load_state_dict(torch.load(path / "efficientnet_lite0.pth", weights_only=True))
    net.eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tower = model.towers["image"]
    with torch.no_grad():
        theirs = net.extract_features(tower.transform(images)).mean(dim=(2, 3))
        torch.testing.assert_close(tower({"image": images}), theirs, rtol=1e-5, atol=1e-5)
    again = load_config(preset="tiny", overrides=[f"model.towers.image={{arch: efficientnet_lite0, image_size: 32, "
                                                  f"checkpoint: {path}}}"])
    rebuilt = build_model(again.model, {m: info.inputs for m in again.model.towers}, 0).towers["image"]
    assert all(torch.equal(v, tower.state_dict()[k]) for k, v in rebuilt.state_dict().items())
