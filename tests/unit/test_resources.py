"""The ledger's measurements on tiny models: FLOPs against the analytic count and full counting,
the CPU memory model against hand-computed sizes, and its ordering in batch size and method."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fedray.model import InputSpec, build_model
from fedray.resources import analytic
from fedray.resources.estimate import measure_stage, synthetic_shard
from fedray.resources.meter import StepMeter
from fedray.schedules import build_schedule
from fedray.training import configure_trainable, local_train

INPUTS = InputSpec(channels=3, image_size=32, vocab_size=100)
CPU = torch.device("cpu")


def _model(cfg):
    return build_model(cfg.model, {m: INPUTS for m in cfg.model.towers}, cfg.train.seed)


@pytest.mark.parametrize("text_arch,head", [("bert", "mlp"), ("distilbert", "paper")])
@pytest.mark.parametrize("method", ["fedmml", "lw", "prog"])
def test_measured_step_flops_match_the_analytic_count(tiny, method, text_arch, head):
    cfg = tiny(f"train.method={method}", f"model.towers.text.arch={text_arch}", f"model.head.kind={head}",
               "train.batch_size=8")
    model = _model(cfg)
    for stage in build_schedule(cfg):
        cost, _ = measure_stage(model, cfg, stage, INPUTS, CPU)
        predicted = analytic.step_flops(cfg, stage, INPUTS, 16, 8)
        assert abs(cost.flops - predicted) <= 0.05 * predicted, (stage.index, cost.flops, predicted)


def test_analytic_parameters_equal_the_built_model(tiny):
    cfg = tiny("model.towers.text.arch=distilbert", "model.head.kind=paper")
    model = _model(cfg)
    counted: dict[str, int] = {}
    for name, p in model.named_parameters():
        counted[model.group_of(name)] = counted.get(model.group_of(name), 0) + p.numel()
    assert counted == analytic.group_params(cfg, INPUTS, 16)


def test_one_measured_step_times_steps_equals_counting_every_step(tiny):
    cfg = tiny("train.method=lw", "train.local_epochs=2", "train.batch_size=8")
    model = _model(cfg)
    stage = build_schedule(cfg)[1]  # a frozen prefix: the case where steps could differ if anything did
    model.set_depths(stage.depths)
    configure_trainable(model, stage)
    shard = synthetic_shard(cfg, INPUTS, rows=30)  # 3 full batches per epoch, 6 rows dropped
    meter = StepMeter()
    with FlopCounterMode(display=False) as full:
        result = local_train(model, shard, stage, cfg.train, seed=1, measure=meter.step)
    assert result.steps == 6
    assert meter.cost is not None and meter.cost.flops * result.steps == full.get_total_flops()


def test_memory_model_parts_are_the_hand_computed_sizes(tiny):
    cfg = tiny("train.method=lw", "train.batch_size=8")
    model = _model(cfg)
    stage = build_schedule(cfg)[1]
    cost, _ = measure_stage(model, cfg, stage, INPUTS, CPU)
    params = analytic.group_params(cfg, INPUTS, 16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert cost.state_bytes == 4 * sum(params[g] for g in stage.present)  # fp32, the tiny model has no buffers
    assert cost.grad_bytes == 4 * sum(params[g] for g in stage.trainable)
    # AdamW: exp_avg and exp_avg_sq per parameter, plus a float32 step counter per tensor.
    assert cost.optimizer_bytes == 2 * cost.grad_bytes + 4 * len(trainable)
    assert cost.saved_bytes > 0


def test_memory_grows_with_batch_size(tiny):
    cfg = tiny("train.method=fedmml")
    model = _model(cfg)
    stage = build_schedule(cfg)[0]
    peaks = [measure_stage(model, replace(cfg, train=replace(cfg.train, batch_size=b)), stage, INPUTS, CPU)[0]
             for b in (4, 8, 16)]
    assert peaks[0].memory_bytes < peaks[1].memory_bytes < peaks[2].memory_bytes
    assert peaks[0].saved_bytes < peaks[1].saved_bytes < peaks[2].saved_bytes
    assert len({p.state_bytes + p.grad_bytes + p.optimizer_bytes for p in peaks}) == 1  # only activations grow


def test_layerwise_needs_less_memory_than_end_to_end_at_the_same_stage(tiny):
    cfg = tiny("train.batch_size=8")
    model = _model(cfg)
    lw = build_schedule(replace(cfg, train=replace(cfg.train, method="lw")))
    prog = build_schedule(replace(cfg, train=replace(cfg.train, method="prog")))
    fedmml = build_schedule(replace(cfg, train=replace(cfg.train, method="fedmml")))[0]
    last_lw = measure_stage(model, cfg, lw[-1], INPUTS, CPU)[0]  # full depth, like FedMML
    full = measure_stage(model, cfg, fedmml, INPUTS, CPU)[0]
    assert last_lw.memory_bytes < full.memory_bytes
    assert last_lw.flops < full.flops
    assert measure_stage(model, cfg, lw[1], INPUTS, CPU)[0].memory_bytes < \
        measure_stage(model, cfg, prog[1], INPUTS, CPU)[0].memory_bytes


def test_frozen_groups_drop_their_stale_gradients(tiny):
    cfg = tiny("train.method=lw", "train.batch_size=8")
    model = _model(cfg)
    first, second = build_schedule(cfg)
    measure_stage(model, cfg, first, INPUTS, CPU)
    configure_trainable(model, second)
    frozen = [n for n, p in model.named_parameters() if model.group_of(n) in second.frozen]
    assert frozen and all(dict(model.named_parameters())[n].grad is None for n in frozen)


def test_audio_tower_with_overlapping_patches_matches_the_analytic_count(tiny):
    cfg = tiny("model.towers={image: {arch: vit, hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64,"
               " patch_size: 8}, audio: {arch: ast, hidden_size: 32, num_layers: 2, num_heads: 2,"
               " intermediate_size: 64, patch_size: 4, patch_stride: 3}}",
               "train.lr={image: 0.001, audio: 0.001, head: 0.001}", "train.batch_size=4", "train.method=lw")
    model = _model(cfg)
    assert analytic.tokens(cfg.model.towers["audio"], "audio", INPUTS, 0)[0] == 4 * 10 + 2  # 13 x 32 features, stride 3
    for stage in build_schedule(cfg):
        cost, _ = measure_stage(model, cfg, stage, INPUTS, CPU)
        assert cost.flops == analytic.step_flops(cfg, stage, INPUTS, 0, 4)
    counted: dict[str, int] = {}
    for name, p in model.named_parameters():
        counted[model.group_of(name)] = counted.get(model.group_of(name), 0) + p.numel()
    assert counted == analytic.group_params(cfg, INPUTS, 0)


def test_a_probe_batch_scaled_to_the_batch_size_matches_measuring_the_full_batch(tiny):
    from fedray.resources.estimate import Workload, estimate

    cfg = tiny("train.batch_size=16", "model.head.kind=paper")
    workload = Workload(INPUTS, shard_size=64)
    full, probe = estimate(cfg, workload), estimate(cfg, workload, probe_batch=4)
    for method, totals in full["methods"].items():
        assert probe["methods"][method]["comm_bytes"] == totals["comm_bytes"]
        for key in ("flops", "peak_memory_bytes"):  # only the B x B contrastive logits do not scale per sample
            assert probe["methods"][method][key] == pytest.approx(totals[key], rel=0.01)


@pytest.mark.parametrize("fusion", ["concat", "add"])
def test_supervised_step_flops_match_the_analytic_count(tiny, fusion):
    cfg = tiny("model.task=classification", f"model.fusion={fusion}", "model.pred_hidden_size=16", "train.batch_size=4",
               "train.method=lw")
    inputs = InputSpec(channels=3, image_size=32, vocab_size=100, num_classes=5)
    model = build_model(cfg.model, {m: inputs for m in cfg.model.towers}, cfg.train.seed)
    for stage in build_schedule(cfg):
        assert "fusion" in stage.trainable
        cost, _ = measure_stage(model, cfg, stage, inputs, CPU)
        assert cost.flops == analytic.step_flops(cfg, stage, inputs, 16, 4)
