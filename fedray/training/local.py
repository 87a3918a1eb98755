"""Local training on one client's shard: fresh AdamW per client per round, as in the paper."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from fedray.config import TrainConfig
from fedray.data import Shard
from fedray.model import CachedPrefix, MultimodalModel, lr_group
from fedray.schedules import StageSpec
from fedray.training.finite import check_finite

Cached = Callable[[torch.Tensor], dict[str, CachedPrefix]]  # batch rows -> cached prefixes of frozen towers
Measure = Callable[[MultimodalModel, torch.optim.Optimizer], AbstractContextManager[None]]  # wraps one step


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


def proximal_term(anchor: list[tuple[torch.Tensor, torch.Tensor]], mu: float) -> torch.Tensor:
    """FedProx (Li et al. 2020): mu/2 * sum ||w - w_global||^2 over (parameter, its global value) pairs."""
    return mu / 2 * sum((p - a).pow(2).sum() for p, a in anchor)


def local_train(model: MultimodalModel, shard: Shard, spec: StageSpec, cfg: TrainConfig, seed: int,
                augment: bool = False, *, cached: Cached | None = None, measure: Measure | None = None,
                proximal: float = 0.0) -> LocalResult:
    """Run ``cfg.local_epochs`` epochs over the shard (shuffled, drop_last) and return the stats.

    The caller has loaded the global tensors and called :func:`configure_trainable`. Every step computes
    ``model(batch, cached=...)``: ``cached`` (rows -> cached prefixes) starts the frozen towers from stored
    activations. ``measure`` wraps the first step (a real step, numerics unchanged), which then runs the whole
    present model, never the cache: the ledger counts what the method costs a client, not what the simulator
    saves. ``proximal`` > 0 adds FedProx's mu/2 * ||w - w_global||^2 over the trainable parameters (the values
    they hold now); the reported loss is the task loss.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout in trainable groups
    opt = make_optimizer(model, spec, cfg)
    device = next(model.parameters()).device
    anchor = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad] if proximal > 0 else []
    n, bsz = len(shard), cfg.batch_size
    steps, total = 0, 0.0
    for _ in range(cfg.local_epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - bsz + 1, bsz):
            idx = perm[start:start + bsz]
            measuring = measure is not None and steps == 0
            with measure(model, opt) if measuring else nullcontext():  # type: ignore[misc]
                batch = {k: v.to(device, non_blocking=True) for k, v in shard.batch(idx, augment, gen).items()}
                loss = model(batch, cached(idx) if cached is not None and not measuring else None)
                objective = loss + proximal_term(anchor, proximal) if anchor else loss
                opt.zero_grad(set_to_none=True)
                objective.backward()
                opt.step()
            steps += 1
            total += loss.item()
            check_finite(total, "train/loss", step=steps)  # NaN/inf stops the run, named (the host adds round, client)
    return LocalResult(n, steps, total / steps if steps else math.nan)
