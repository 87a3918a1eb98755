"""The supervised task: fusion widths, the 'fusion' layer group in every schedule, pooled metrics, audio stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.config import load_config
from fedray.model import InputSpec, build_model, lr_group
from fedray.model.fusion import FusionClassifier
from fedray.schedules import build_schedule
from fedray.training.classify import accuracy_macro_f1


@pytest.mark.parametrize("fusion,width", [("concat", 2), ("add", 3), ("attention", 3), ("co_attention", 4)])
def test_fusion_widths_match_the_paper(fusion, width):
    d = 8
    head = FusionClassifier(fusion, d, 2, hidden=16, num_classes=5)
    ps = [torch.randn(3, d), torch.randn(3, d)]
    assert head.fuse(ps).shape == (3, width * d)  # paper: 512 / 768 / 768 / 1024 for D = 256
    assert head(ps).shape == (3, 5)
    three = FusionClassifier(fusion, d, 3, hidden=16, num_classes=5)
    assert three(ps + [torch.randn(3, d)]).shape == (3, 5)


def test_attention_fusion_weights_modalities():
    head = FusionClassifier("attention", 4, 2, hidden=8, num_classes=2)
    p = [torch.randn(2, 4), torch.randn(2, 4)]
    extra = head.fuse(p)[:, 8:]  # Σ_m a_m W_m p_m
    with torch.no_grad():
        w = head.fuse.attn(torch.cat(p, -1)).softmax(-1)
        want = w[:, :1] * head.fuse.proj[0](p[0]) + w[:, 1:] * head.fuse.proj[1](p[1])
    assert torch.allclose(extra, want, atol=1e-6)


def _cfg(method: str, fusion: str = "concat"):
    return load_config(preset="avdigits", overrides=[f"train.method={method}", f"model.fusion={fusion}"])


@pytest.mark.parametrize("method", ["fedmml", "lw", "prog"])
def test_fusion_group_is_trained_and_exchanged_in_every_stage(method):
    for spec in build_schedule(_cfg(method)):
        assert "fusion" in spec.trainable and "fusion" in spec.exchanged and "fusion" not in spec.frozen


def test_fusion_tensors_form_one_group_with_head_learning_rate():
    cfg = _cfg("lw", "co_attention")
    spec = InputSpec(channels=1, image_size=16, frames=32, features=13, num_classes=10)
    model = build_model(cfg.model, {"image": spec, "audio": spec}, seed=0)
    names = [n for n in model.state_dict() if model.group_of(n) == "fusion"]
    assert names and all(n.startswith("fusion.") for n in names)
    assert "fusion" in model.groups() and lr_group("fusion") == "head"
    assert set(model.state({"fusion"})) == set(names)
    assert model.fusion.pred[-1].out_features == 10
    batch = {"image": torch.randn(4, 1, 16, 16), "audio": torch.randn(4, 32, 13), "label": torch.tensor([0, 1, 2, 3])}
    loss = model(batch)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(model.logits(batch), batch["label"]))
    same = build_model(cfg.model, {"image": spec, "audio": spec}, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state({"fusion"}).values(), same.state({"fusion"}).values()))


def test_accuracy_is_pooled_and_macro_f1_averages_classes():
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    target = torch.tensor([0, 1, 1, 1, 2, 2, 0])
    acc, f1 = accuracy_macro_f1(pred, target, 3)
    assert acc == pytest.approx(5 / 7)
    # per class F1: c0 = 2·1/(2+1+1) = .5, c1 = 2·2/(4+0+1) = .8, c2 = 2·2/(4+1+0) = .8
    assert f1 == pytest.approx((0.5 + 0.8 + 0.8) / 3)


def test_evaluation_pools_over_uneven_batches():
    from fedray.data import Shard
    from fedray.training.classify import evaluate_classifier

    cfg = _cfg("fedmml")
    spec = InputSpec(channels=1, image_size=16, frames=32, features=13, num_classes=10)
    model = build_model(cfg.model, {"image": spec, "audio": spec}, seed=1)
    gen = torch.Generator().manual_seed(0)
    shard = Shard({"image": torch.randint(0, 255, (7, 1, 16, 16), generator=gen, dtype=torch.uint8),
                   "audio": torch.randn(7, 32, 13, generator=gen), "label": torch.randint(0, 10, (7,), generator=gen)})
    metrics = evaluate_classifier(model, shard, batch_size=3)  # batches of 3, 3, 1
    model.eval()
    with torch.no_grad():
        pred = model.logits(shard.batch(torch.arange(7))).argmax(-1)
    assert metrics["eval/accuracy"] == pytest.approx((pred == shard.tensors["label"]).float().mean().item())


def test_audio_is_standardised_with_training_rows_only():
    from fedray.data.dataset import read_columns
    from fedray.plan import plan_run

    plan = plan_run(load_config(preset="avdigits", overrides=["data.partition.kind=iid"]))
    mean, std = (np.asarray(v) for v in plan.info.audio_norm)
    rows = np.sort(np.concatenate(plan.client_rows))
    audio = np.asarray(read_columns(plan.info, ["audio"], rows).column("audio").to_pylist(), dtype=np.float64).reshape(-1, 13)
    assert np.allclose(mean, audio.mean(0), atol=1e-4) and np.allclose(std, audio.std(0), rtol=1e-3)
    assert not set(rows) & set(plan.eval_rows.tolist())


@pytest.mark.parametrize("arch", ["ast", "vit"])
def test_audio_tower_reads_audio_not_image(arch):
    cfg = load_config(preset="avdigits", overrides=[f"model.towers.audio.arch={arch}"])
    spec = InputSpec(channels=1, image_size=16, frames=32, features=13, num_classes=10)
    model = build_model(cfg.model, {"image": spec, "audio": spec}, seed=0).eval()
    batch = {"image": torch.randn(2, 1, 16, 16), "audio": torch.randn(2, 32, 13)}
    feat = model.towers["audio"](batch)
    assert feat.shape == (2, 64)
    changed = model.towers["audio"]({"image": batch["image"] + 1, "audio": batch["audio"]})
    assert torch.allclose(feat, changed)  # the image does not feed the audio tower
    assert not torch.allclose(feat, model.towers["audio"]({**batch, "audio": batch["audio"] + 1}))
