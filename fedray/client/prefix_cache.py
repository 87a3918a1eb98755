"""Frozen-prefix activation cache for layer-wise training. No Ray.

In ``lw`` stage s, each tower's embeddings and first blocks are frozen (eval mode, no
gradient). On a client's shard their outputs do not change during the stage when inputs are
deterministic (``data.augment: false``), so a host computes the hidden states after the last
frozen block once per client and trains the active blocks, final norm and heads on them.

Validity rules (``fedray.config.schema.prefix_cache_problem``): method ``lw`` with at least 2 stages (fedmml and
prog train every present group, so nothing is frozen) and no augmentation. Dropout is no
obstacle: frozen groups run in eval mode (no dropout, no RNG draws), so the RNG stream of the
trainable part is the same with and without the cache.

An entry holds, per tower, what ``Tower.embed`` returned after ``start`` blocks ([N, tokens, d]
hidden states, or [N, C, H, W] feature maps for a CNN tower) and the text padding mask [N, tokens]
(a :class:`~fedray.model.CachedPrefix` over the whole shard). It survives a stage change: the next
stage extends it by running the newly frozen blocks once. It is dropped when the host loads new
values of a group it was computed with. Entries past ``budget_mb`` are not stored: those clients
recompute the prefix per batch. The cache only stores activations and hands out a batch's rows
(:func:`rows`); the loss is ``MultimodalModel.forward``'s, cached or not.
"""

from __future__ import annotations

import torch

from fedray.config import ExperimentConfig
from fedray.config.schema import prefix_cache_problem
from fedray.data import Shard
from fedray.model import CachedPrefix, MultimodalModel
from fedray.schedules import StageSpec

CHUNK = 256  # rows per forward pass when filling an entry (bounds peak memory)


def cache_enabled(cfg: ExperimentConfig) -> bool:
    """``on`` (validated by the config), ``auto`` when valid, ``off`` never."""
    mode = cfg.runtime.cache_prefix
    return mode == "on" or (mode == "auto" and prefix_cache_problem(cfg) is None)


def frozen_depth(model: MultimodalModel, tower: str, spec: StageSpec) -> int | None:
    """Blocks of ``tower`` that form its frozen prefix, or None when its embeddings train (no prefix)."""
    if f"{tower}.embed" not in spec.frozen:
        return None
    depth = model.towers[tower].depth
    return next((i for i in range(depth) if f"{tower}.block.{i}" not in spec.frozen), depth)


Entry = dict[str, CachedPrefix]  # one client's cached towers, over every row of its shard


def rows(entry: Entry, idx: torch.Tensor) -> dict[str, CachedPrefix]:
    """The cached prefixes of rows ``idx`` (a batch), for ``MultimodalModel.forward(batch, cached=...)``."""
    return {m: CachedPrefix(t.start, t.hidden[idx], _rows(t.mask, idx)) for m, t in entry.items()}


class PrefixCache:
    """Per-client cached prefix activations of one host, within a memory budget."""

    def __init__(self, budget_mb: float) -> None:
        self.budget = int(budget_mb * 2**20)
        self.entries: dict[int, Entry] = {}
        self.nbytes = 0
        self.hits = self.fills = self.skips = 0  # counters for tests and benchmarks

    def clear(self) -> None:
        self.entries.clear()
        self.nbytes = 0

    def invalidate(self, groups: set[str]) -> None:
        """Drop entries computed with any of ``groups`` (after the host loaded new values of them)."""
        for client in list(self.entries):
            towers = self.entries[client]
            for name, t in list(towers.items()):
                used = {f"{name}.embed"} | {f"{name}.block.{i}" for i in range(t.start)}
                if used & groups:
                    self.nbytes -= _size(t)
                    del towers[name]
            if not towers:
                del self.entries[client]

    @torch.no_grad()
    def prepare(self, client: int, model: MultimodalModel, shard: Shard, spec: StageSpec) -> Entry | None:
        """The client's entry for this stage (filled or extended now), or None: recompute per batch."""
        want = {m: k for m in model.towers if (k := frozen_depth(model, m, spec)) is not None}
        if not want:
            return None
        entry = self.entries.get(client, {})
        if set(entry) != set(want) or any(entry[m].start > k for m, k in want.items()):
            self._drop(client)
            entry = {}
        if not entry:
            need = _estimate(model, shard, want)
            if self.nbytes + need > self.budget:
                self.skips += 1
                return None
            entry = {m: self._fill(model, m, shard) for m in want}
            self.nbytes += sum(_size(t) for t in entry.values())
            self.entries[client] = entry
            self.fills += 1
        else:
            self.hits += 1
        for m, k in want.items():  # extend by the blocks frozen since the entry was made
            t = entry[m]
            if t.start < k:
                tower = model.towers[m]
                t.hidden = torch.cat([tower.run_blocks(t.hidden[i:i + CHUNK], _rows(t.mask, i), t.start, k)
                                      for i in range(0, len(t.hidden), CHUNK)])
                t.start = k
        return entry

    def _fill(self, model: MultimodalModel, tower_name: str, shard: Shard) -> CachedPrefix:
        tower = model.towers[tower_name]
        device = next(model.parameters()).device
        hs, masks = [], []
        for i in range(0, len(shard), CHUNK):
            idx = torch.arange(i, min(i + CHUNK, len(shard)))
            batch = {k: v.to(device) for k, v in shard.batch(idx).items()}
            h, mask = tower.embed(batch)
            hs.append(h)
            masks.append(mask)
        mask = None if masks[0] is None else torch.cat(masks)
        return CachedPrefix(0, torch.cat(hs), mask)

    def _drop(self, client: int) -> None:
        for t in self.entries.pop(client, {}).values():
            self.nbytes -= _size(t)


def _rows(mask: torch.Tensor | None, idx: torch.Tensor | int) -> torch.Tensor | None:
    if mask is None:
        return None
    return mask[idx:idx + CHUNK] if isinstance(idx, int) else mask[idx]


def _size(t: CachedPrefix) -> int:
    return t.hidden.nbytes + (t.mask.nbytes if t.mask is not None else 0)


def _estimate(model: MultimodalModel, shard: Shard, want: dict[str, int]) -> int:
    """Bytes an entry will take, from one row's embedding (before computing the whole shard)."""
    total = 0
    with torch.no_grad():
        device = next(model.parameters()).device
        one = {k: v.to(device) for k, v in shard.batch(torch.arange(1)).items()}
        for m in want:
            h, mask = model.towers[m].embed(one)
            total += len(shard) * (h.nbytes + (mask.nbytes if mask is not None else 0))
    return total
