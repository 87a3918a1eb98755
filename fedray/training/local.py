"""Local training on one client's shard: fresh AdamW per client per round, as in the paper."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fedray.config import TrainConfig
from fedray.data import Shard
from fedray.model import MultimodalModel, lr_group
from fedray.schedules import StageSpec
from fedray.training.finite import check_finite

if TYPE_CHECKING:
    from fedray.resources.meter import StepMeter


@dataclass(frozen=True)
class LocalResult:
    """What one client's local training produced (besides its weights)."""

    num_samples: int  # shard size: the client's FedAvg weight
    steps: int
    loss: float  # mean training loss over the steps (nan when the shard is smaller than a batch)


def configure_trainable(model: MultimodalModel, spec: StageSpec) -> None:
    """Set ``requires_grad`` from the stage; frozen groups run in eval mode so their outputs are
    deterministic (no dropout, fixed norm statistics) and build no autograd graph."""
    for name, param in model.named_parameters():
        param.requires_grad_(model.group_of(name) in spec.trainable)
        if not param.requires_grad:
            param.grad = None  # a group frozen at this stage must not keep its last gradient alive
    model.train()
    for group in spec.frozen:
        model.group_module(group).eval()


def make_optimizer(model: MultimodalModel, spec: StageSpec, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters, one param group per lr group (towers: weight_decay, heads: head_weight_decay)."""
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(lr_group(model.group_of(name)), []).append(param)
    return torch.optim.AdamW([
        {"params": params, "lr": spec.lrs[g], "weight_decay": cfg.head_weight_decay if g == "head" else cfg.weight_decay}
        for g, params in groups.items()
    ])


def local_train(model: MultimodalModel, shard: Shard, spec: StageSpec, cfg: TrainConfig, seed: int,
                augment: bool = False, batch_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
                meter: StepMeter | None = None) -> LocalResult:
    """Run ``cfg.local_epochs`` epochs over the shard (shuffled, drop_last) and return the stats.

    The caller has loaded the global tensors and called :func:`configure_trainable`. ``batch_loss``
    (rows -> loss) replaces ``model.loss`` on the decoded batch, e.g. to start from cached activations.
    A ``meter`` measures the first step (FLOPs, memory) unless it already holds a cost; that step always
    runs the whole present model, so the ledger counts what the method costs a client, not the cache.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout in trainable groups
    opt = make_optimizer(model, spec, cfg)
    device = next(model.parameters()).device
    n, bsz = len(shard), cfg.batch_size
    steps, total = 0, 0.0
    for _ in range(cfg.local_epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - bsz + 1, bsz):
            measuring = meter is not None and meter.cost is None
            with meter.step(model, opt) if measuring else nullcontext():  # type: ignore[union-attr]
                if batch_loss is not None and not measuring:  # cached and uncached losses are bit-identical
                    loss = batch_loss(perm[start:start + bsz])
                else:
                    batch = {k: v.to(device, non_blocking=True)
                             for k, v in shard.batch(perm[start:start + bsz], augment, gen).items()}
                    loss = model.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            steps += 1
            total += loss.item()
            check_finite(total, "train/loss", step=steps)  # NaN/inf stops the run, named (the host adds round, client)
    return LocalResult(n, steps, total / steps if steps else math.nan)
