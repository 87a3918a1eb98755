"""``fedray resources``: one client's memory, FLOPs and communication for FedMML, LW and Prog.

For every stage of every method it builds the stage exactly as a run does (``build_schedule``,
``configure_trainable``, ``local_train``) on the config's model with random weights, runs ONE
real local step on a synthetic batch of the real shapes under a :class:`StepMeter`, and scales:

* FLOPs of a stage = step FLOPs x local steps per round (epochs x floor(shard / batch), drop_last)
  x rounds;
* peak memory of a method = the largest step memory over the stages that have rounds;
* communication per round = the exchanged tensors (parameters and buffers) sent to the client
  plus the same returned by it, plus, once per stage, the frozen groups that earlier stages
  trained (the LW prefix sync: ``fedray.schedules.stale_groups``, the rule runs use), for one
  client taking part in every round.

Identical stages (LW and Prog stage 1; Prog's last stage and FedMML) are measured once.
Input shapes come from the dataset (``data.source``) or, for the paper presets, from
:data:`WORKLOADS`, so no dataset is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from fedray.config import ConfigError, ExperimentConfig
from fedray.data import Shard
from fedray.model import InputSpec, MultimodalModel, build_model
from fedray.resources import analytic
from fedray.resources.meter import StepCost, StepMeter, cuda_peak
from fedray.schedules import METHODS, REFERENCE, StageSpec, build_schedule, stale_groups
from fedray.training import configure_trainable, local_train


@dataclass(frozen=True)
class Workload:
    """What an estimate needs besides the config: input shapes and one client's shard size."""

    inputs: InputSpec
    shard_size: int  # training samples of one client


# COCO: 224 px RGB, DistilBERT uncased vocab, floor(118,287 / 10) pairs per client (PAPER.md §4.1).
# ADVANCE: 224 px RGB + 1024 x 128 log-mel, 13 classes, the mean of 4,056 training pairs over 10 clients.
WORKLOADS = {
    "paper-coco": Workload(InputSpec(channels=3, image_size=224, vocab_size=30522), 11828),
    "paper-advance": Workload(InputSpec(channels=3, image_size=224, frames=1024, features=128, num_classes=13), 405),
}


def synthetic_shard(cfg: ExperimentConfig, inputs: InputSpec, rows: int, seed: int = 0) -> Shard:
    """``rows`` random samples shaped like the real ones (the values do not change the cost)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for m, tw in cfg.model.towers.items():
        if m == "image":
            out["image"] = torch.randint(0, 256, (rows, inputs.channels, inputs.image_size, inputs.image_size),
                                         dtype=torch.uint8, generator=gen)
        elif m == "text":
            out["text_ids"] = torch.randint(0, inputs.vocab_size, (rows, tw.max_length), generator=gen)
            out["text_mask"] = torch.ones(rows, tw.max_length, dtype=torch.int64)  # every caption padded to max_length
        else:
            out["audio"] = torch.randn(rows, inputs.frames, inputs.features, generator=gen)
    if getattr(cfg.model, "task", "contrastive") == "classification":  # the supervised task needs labels
        out["label"] = torch.randint(0, max(1, getattr(inputs, "num_classes", 1)), (rows,), generator=gen)
    return Shard(out)


def measure_stage(model: MultimodalModel, cfg: ExperimentConfig, stage: StageSpec, inputs: InputSpec,
                  device: torch.device) -> tuple[StepCost, int]:
    """One real local step at ``stage``: its cost, and on CUDA the max_memory_allocated over two steps.

    On CUDA only the present groups are moved to the device (absent blocks would inflate the figure);
    the second step is the one that holds the previous gradients and the optimizer state.
    """
    model.set_depths(stage.depths)
    model.zero_grad(set_to_none=True)
    configure_trainable(model, stage)
    steps = 2 if device.type == "cuda" else 1
    if device.type == "cuda":
        model.cpu()
        for group in model.groups():
            model.group_module(group).to(device)
        torch.cuda.empty_cache()
    shard = synthetic_shard(cfg, inputs, steps * cfg.train.batch_size)
    meter = StepMeter()
    with cuda_peak(device) as peak:
        local_train(model, shard, stage, replace(cfg.train, local_epochs=1), cfg.train.seed, measure=meter.step)
    assert meter.cost is not None
    return meter.cost, peak[0]


def prefix_sync_bytes(model: MultimodalModel, schedule: list[StageSpec]) -> dict[int, int]:
    """Bytes of frozen groups a client taking part in every round receives at each stage's start (the runs' rule:
    :func:`fedray.schedules.stale_groups`, from the last stage it took part in)."""
    out, synced = {}, 0
    for spec in schedule:
        if spec.rounds:
            out[spec.index] = sum(t.nbytes for t in model.state(stale_groups(schedule, synced, spec.index)).values())
            synced = spec.index
    return out


def scaled(cost: StepCost, probe: int, batch: int) -> StepCost:
    """A step of ``batch`` samples from one of ``probe``: FLOPs and saved activations are per sample.

    Exact for every per-sample product; the contrastive loss's B x B logits (a few MFLOPs, tiny) are not.
    """
    return replace(cost, flops=round(cost.flops * batch / probe), saved_bytes=round(cost.saved_bytes * batch / probe))


def estimate(cfg: ExperimentConfig, workload: Workload, device: str = "cpu", preset: str | None = None,
             methods: tuple[str, ...] = tuple(METHODS), probe_batch: int | None = None,
             on_stage: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Per-stage and whole-run resources of one client for each method (see the module docstring).

    ``probe_batch`` measures steps of that many samples and scales them to the batch size (for
    models whose real step does not fit the machine); CPU only. ``on_stage`` receives each stage's
    row as soon as it is measured (progress: a paper preset takes minutes).
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch")
    if probe_batch is not None and (dev.type == "cuda" or not 2 <= probe_batch <= cfg.train.batch_size):
        raise ConfigError(f"--probe-batch {probe_batch}: must be between 2 and train.batch_size "
                          f"({cfg.train.batch_size}), on CPU")
    t0 = time.perf_counter()
    inputs, batch = workload.inputs, cfg.train.batch_size
    if workload.shard_size < batch:
        raise ConfigError(f"config key 'train.batch_size': {batch} is larger than the client shard "
                          f"({workload.shard_size}); no local step would run")
    text_length = max((t.max_length for m, t in cfg.model.towers.items() if m == "text"), default=0)
    steps = cfg.train.local_epochs * (workload.shard_size // batch)
    model = build_model(cfg.model, {m: inputs for m in cfg.model.towers}, cfg.train.seed)
    cache: dict[tuple[Any, ...], tuple[StepCost, int]] = {}
    totals: dict[str, dict[str, int | None]] = {}
    stages: list[dict[str, Any]] = []
    for method in methods:
        mcfg = replace(cfg, train=replace(cfg.train, method=method))
        schedule = build_schedule(mcfg)
        sync = prefix_sync_bytes(model, schedule)
        total = {"comm_bytes": 0, "flops": 0, "peak_memory_bytes": 0}
        analytic_total: int | None = 0  # None once a stage has no analytic count
        for spec in schedule:
            key = (tuple(sorted(spec.depths.items())), spec.trainable)
            if key not in cache:
                probe = replace(mcfg, train=replace(mcfg.train, batch_size=probe_batch or batch))
                cost, cuda_bytes = measure_stage(model, probe, spec, inputs, dev)
                cache[key] = (scaled(cost, probe_batch, batch) if probe_batch else cost), cuda_bytes
            cost, cuda_bytes = cache[key]
            model.set_depths(spec.depths)
            exchanged = sum(t.nbytes for t in model.state(spec.exchanged).values())
            try:
                predicted: int | None = analytic.step_flops(mcfg, spec, inputs, text_length, batch)
            except NotImplementedError:
                predicted = None
            row = {
                "method": method, "stage": spec.index + 1, "rounds": spec.rounds, "steps_per_round": steps,
                "depths": dict(spec.depths), "exchanged_bytes": exchanged, "prefix_sync_bytes": sync.get(spec.index, 0),
                "step_flops": cost.flops, "analytic_step_flops": predicted,
                "memory": {**{k: v for k, v in asdict(cost).items() if k != "flops"}, "total": cost.memory_bytes},
                "comm_bytes": spec.rounds * 2 * exchanged + sync.get(spec.index, 0),
                "flops": spec.rounds * steps * cost.flops,
            }
            if dev.type == "cuda":
                row["cuda_max_memory_allocated"] = cuda_bytes
            stages.append(row)
            if on_stage is not None:
                on_stage(row)
            total["comm_bytes"] += row["comm_bytes"]
            total["flops"] += row["flops"]
            if analytic_total is not None:
                analytic_total = None if predicted is None else analytic_total + spec.rounds * steps * predicted
            if spec.rounds:
                total["peak_memory_bytes"] = max(total["peak_memory_bytes"], cost.memory_bytes)
                if dev.type == "cuda":
                    total["cuda_max_memory_allocated"] = max(total.get("cuda_max_memory_allocated", 0), cuda_bytes)
        totals[method] = {**total, "analytic_flops": analytic_total}
    ratios = {}
    if REFERENCE in totals:
        for m in totals:
            if m != REFERENCE:
                ratios[f"{REFERENCE}/{m}"] = {k: base / v for k, v in totals[m].items()
                                              if v and (base := totals[REFERENCE][k]) is not None}
    return {
        "preset": preset or cfg.name, "device": str(dev), "batch_size": batch, "probe_batch": probe_batch,
        "local_steps_per_round": steps,
        "workload": {"shard_size": workload.shard_size, "text_length": text_length, **asdict(inputs)},
        "methods": totals, "ratios": ratios, "stages": stages, "seconds": time.perf_counter() - t0,
    }


def stage_label(row: dict[str, Any]) -> str:
    """One measured stage in a few words, for progress output."""
    return (f"{row['method']} stage {row['stage']}: step {row['step_flops'] / 1e9:.4g} GFLOPs, "
            f"training memory {_mib(row['memory']['total'])} MiB (modelled)")


def _g(flops: int | None, unit: float = 1e9) -> str:
    return "-" if flops is None else f"{flops / unit:.5g}"


def _mib(b: float) -> str:
    return f"{b / 2**20:.5g}"


def to_text(report: dict[str, Any]) -> str:
    """The per-method summary with ratios to FedMML, then the per-stage detail, as Markdown tables."""
    m, r = report["methods"], report["ratios"]
    cuda = any("cuda_max_memory_allocated" in t for t in m.values())
    head = ["method", "peak memory MiB (CPU model)"] + (["cuda max allocated MiB"] if cuda else []) + [
        "TFLOPs (measured)", "TFLOPs (analytic)", "comm GB", "memory x", "FLOPs x", "comm x"]
    probe = f" (scaled from steps of {report['probe_batch']})" if report.get("probe_batch") else ""
    lines = [f"resources of one client: {report['preset']} on {report['device']}, batch {report['batch_size']}{probe}, "
             f"{report['local_steps_per_round']} local steps per round, text length {report['workload']['text_length']}",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in m.items():
        ratio = r.get(f"{REFERENCE}/{name}", {k: 1.0 for k in t}) if name != REFERENCE else {k: 1.0 for k in t}
        cells = [name, _mib(t["peak_memory_bytes"])] + ([_mib(t["cuda_max_memory_allocated"])] if cuda else []) + [
            f"{t['flops'] / 1e12:.5g}", _g(t["analytic_flops"], 1e12), f"{t['comm_bytes'] / 1e9:.5g}",
            f"{ratio.get('peak_memory_bytes', 0):.2f}", f"{ratio.get('flops', 0):.2f}", f"{ratio.get('comm_bytes', 0):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["method", "stage", "rounds", "depths", "exchanged MiB", "prefix sync MiB", "step GFLOPs", "analytic",
            "params+buffers MiB", "grads MiB", "AdamW MiB", "saved MiB", "peak MiB"] + (["cuda MiB"] if cuda else [])
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in report["stages"]:
        mem = s["memory"]
        cells = [s["method"], str(s["stage"]), str(s["rounds"]), "/".join(str(v) for v in s["depths"].values()),
                 _mib(s["exchanged_bytes"]), _mib(s["prefix_sync_bytes"]), f"{s['step_flops'] / 1e9:.5g}",
                 _g(s["analytic_step_flops"]), _mib(mem["state_bytes"]), _mib(mem["grad_bytes"]),
                 _mib(mem["optimizer_bytes"]), _mib(mem["saved_bytes"]), _mib(mem["total"])]
        lines.append("| " + " | ".join(cells + ([_mib(s["cuda_max_memory_allocated"])] if cuda else [])) + " |")
    lines.append(f"\nmeasured in {report['seconds']:.0f} s")
    return "\n".join(lines) + "\n"
