"""What each method makes present, trainable, frozen and exchanged at every stage."""

from __future__ import annotations

import pytest

from fedray.config import load_config
from fedray.schedules import allocate_rounds, build_schedule


def paperlike(method: str, rounds: str = "[0, 0, 0, 10, 30, 50]"):
    """ViT 12 blocks (2/stage) + BERT 6 blocks (1/stage), 6 stages, as in the paper (tiny widths)."""
    return load_config(preset="tiny", overrides=[
        f"train.method={method}", "train.stages=6", f"train.rounds={rounds}", "train.total_rounds=90",
        "model.towers.image.num_layers=12", "model.towers.image.blocks_per_stage=2",
        "model.towers.text.num_layers=6", "model.towers.text.blocks_per_stage=1",
    ])


def blocks(tower: str, lo: int, hi: int) -> set[str]:
    return {f"{tower}.block.{i}" for i in range(lo, hi)}


HEADS = {"image.head", "text.head", "image.final_norm"}


def test_lw_trains_only_new_groups_plus_heads_and_final_norm():
    specs = build_schedule(paperlike("lw"))
    assert [s.rounds for s in specs] == [0, 0, 0, 10, 30, 50]
    first = specs[0]
    assert first.depths == {"image": 2, "text": 1}
    assert first.trainable == {"image.embed", "text.embed"} | blocks("image", 0, 2) | blocks("text", 0, 1) | HEADS
    assert first.frozen == set()
    for s, spec in enumerate(specs[1:], start=1):
        assert spec.depths == {"image": 2 * (s + 1), "text": s + 1}
        assert spec.trainable == blocks("image", 2 * s, 2 * s + 2) | blocks("text", s, s + 1) | HEADS
        assert spec.frozen == {"image.embed", "text.embed"} | blocks("image", 0, 2 * s) | blocks("text", 0, s)
        assert spec.exchanged.isdisjoint(spec.frozen)  # lw never exchanges a frozen group
        assert not any(g.startswith("image.block.") and int(g.split(".")[-1]) >= 2 * (s + 1) for g in spec.present)


def test_prog_trains_everything_present_and_exchanges_all_at_the_last_stage():
    specs = build_schedule(paperlike("prog", "uniform"))
    for spec in specs:
        assert spec.trainable == spec.present and spec.frozen == set()
    last = specs[-1]
    assert last.present == {"image.embed", "text.embed"} | blocks("image", 0, 12) | blocks("text", 0, 6) | HEADS


def test_fedmml_is_one_full_stage_with_all_rounds():
    (spec,) = build_schedule(paperlike("fedmml"))
    assert spec.rounds == 90
    assert spec.exchanged == spec.present and spec.depths == {"image": 12, "text": 6}
    assert spec.lrs == build_schedule(paperlike("lw"))[-1].lrs  # the last stage's rates


def test_learning_rates_scale_with_batch_per_stage():
    cfg = load_config(preset="tiny", overrides=["train.lr.image=[0.1, 0.2]", "train.batch_size=64"])
    specs = build_schedule(cfg)
    assert specs[0].lrs["image"] == pytest.approx(0.1 * 64 / 256)
    assert specs[1].lrs["image"] == pytest.approx(0.2 * 64 / 256)
    assert specs[1].lrs["head"] == pytest.approx(0.004 * 64 / 256)


@pytest.mark.parametrize("rounds, stages, total, expected", [
    ("skewed", 6, 90, [0, 0, 0, 10, 30, 50]),
    ("uniform", 6, 90, [15] * 6),
    ("uniform", 4, 10, [2, 2, 3, 3]),
    ("skewed", 1, 5, [5]),
    ([1, 0, 2], 3, 99, [1, 0, 2]),
])
def test_allocations(rounds, stages, total, expected):
    assert allocate_rounds(rounds, stages, total) == expected
    assert sum(allocate_rounds(rounds, stages, total)) == (total if isinstance(rounds, str) else sum(rounds))
