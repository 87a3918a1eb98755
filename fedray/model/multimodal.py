"""The multimodal model: a mapping of towers, one projection head per tower, and its layer groups.

Group names are ``<tower>.embed``, ``<tower>.block.<i>``, ``<tower>.final_norm`` and ``<tower>.head``,
plus ``fusion`` (fusion + prediction head) for the supervised task.
They are the unit that schedules freeze, train and exchange. ``state(groups)`` returns exactly the
tensors (parameters and buffers, such as the heads' BatchNorm statistics) of those groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedray.config import ModelConfig
from fedray.model.fusion import FusionClassifier
from fedray.model.heads import projection_head
from fedray.model.losses import contrastive_loss
from fedray.model.encoders import build_tower
from fedray.model.towers import InputSpec, Tower


@dataclass
class CachedPrefix:
    """A tower's frozen prefix already applied to some rows: what ``forward(batch, cached=...)`` starts from."""

    start: int  # blocks already applied to ``hidden``
    hidden: torch.Tensor  # what Tower.embed returns, then ``start`` blocks: [B, N, d], or [B, C, H, W] for a CNN
    mask: torch.Tensor | None  # the text padding mask [B, N] (1 = token) of Tower.embed, else None


class MultimodalModel(nn.Module):
    """Towers keyed by modality, each followed by its projection head."""

    def __init__(self, towers: dict[str, Tower], heads: dict[str, nn.Module], temperature: float,
                 fusion: FusionClassifier | None = None) -> None:
        super().__init__()
        self.towers = nn.ModuleDict(towers)
        self.heads = nn.ModuleDict(heads)
        self.temperature = temperature
        self.fusion = fusion  # None: contrastive task; else fusion + prediction head (classification)
        # Tensor name -> group, fixed at build time (module structure never changes afterwards).
        self._group_of = {name: _group_of(name) for name in self.state_dict(keep_vars=True)}

    @property
    def modalities(self) -> list[str]:
        return list(self.towers)

    def set_depths(self, depths: dict[str, int]) -> None:
        """Make the first ``depths[t]`` blocks of each tower present."""
        for name, depth in depths.items():
            self.towers[name].depth = depth

    def groups(self) -> list[str]:
        """Every layer group present at the current depths."""
        out = []
        for name, tower in self.towers.items():
            out += [f"{name}.{g}" for g in tower.groups()] + [f"{name}.head"]
        return out + (["fusion"] if self.fusion is not None else [])

    def group_module(self, group: str) -> nn.Module:
        if group == "fusion":
            assert self.fusion is not None
            return self.fusion
        tower, _, rest = group.partition(".")
        return self.heads[tower] if rest == "head" else self.towers[tower].group_module(rest)

    def group_of(self, tensor_name: str) -> str:
        return self._group_of[tensor_name]

    def state(self, groups: set[str] | frozenset[str]) -> dict[str, torch.Tensor]:
        """Parameters and buffers of ``groups``, by name, in a fixed order (detached, not copied)."""
        return {n: t for n, t in self.state_dict().items() if self._group_of[n] in groups}

    def features(self, batch: dict[str, torch.Tensor], cached: dict[str, CachedPrefix] | None = None
                 ) -> dict[str, torch.Tensor]:
        """Each tower's head output [B, D] (unnormalised), in tower order.

        A tower named in ``cached`` starts from its cached hidden states (its embeddings and first ``start``
        blocks already applied: what the prefix cache stores); the others start from ``batch``. Both run the
        same modules in the same order, so a cached batch computes exactly what an uncached one does.
        """
        out = {}
        for m, tower in self.towers.items():
            prefix = cached.get(m) if cached else None
            if prefix is None:
                (h, mask), start = tower.embed(batch), 0
            else:
                h, mask, start = prefix.hidden, prefix.mask, prefix.start
            out[m] = self.heads[m](tower.pool(tower.run_blocks(h, mask, start, tower.depth), mask))
        return out

    def encode(self, batch: dict[str, torch.Tensor], cached: dict[str, CachedPrefix] | None = None
               ) -> dict[str, torch.Tensor]:
        """L2-normalised projections per modality, each [B, out_dim] (retrieval, InfoNCE)."""
        return {m: F.normalize(p, dim=-1) for m, p in self.features(batch, cached).items()}

    @property
    def task(self) -> str:
        return "contrastive" if self.fusion is None else "classification"

    def logits(self, batch: dict[str, torch.Tensor], cached: dict[str, CachedPrefix] | None = None) -> torch.Tensor:
        """Class logits [B, C]: the fused (unnormalised) projections through the prediction head."""
        assert self.fusion is not None, "logits() needs model.task: classification"
        return self.fusion(list(self.features(batch, cached).values()))

    def forward(self, batch: dict[str, torch.Tensor], cached: dict[str, CachedPrefix] | None = None) -> torch.Tensor:
        """The training loss of one batch: fusion + cross-entropy (classification) or InfoNCE over every pair.

        The one forward path: local training (with and without cached prefixes), evaluation and the meter use it.
        """
        if self.fusion is not None:
            return F.cross_entropy(self.logits(batch, cached), batch["label"])
        return contrastive_loss(self.encode(batch, cached), self.temperature)

def _group_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "fusion":
        return "fusion"
    if parts[0] == "heads":
        return f"{parts[1]}.head"
    tower, module = parts[1], parts[2]
    if module == "blocks":
        return f"{tower}.block.{parts[3]}"
    return f"{tower}.{'embed' if module == 'embeddings' else module}"


def lr_group(group: str) -> str:
    """The learning-rate group of a layer group: its tower's name, or ``head``."""
    tower, _, rest = group.partition(".")
    return "head" if rest == "head" or group == "fusion" else tower


def build_model(cfg: ModelConfig, inputs: dict[str, InputSpec], seed: int) -> MultimodalModel:
    """Build the full-depth model deterministically from ``seed`` (same weights on every party)."""
    towers = {m: build_tower(t, inputs[m], m, seed + 1000 * i) for i, (m, t) in enumerate(cfg.towers.items())}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        heads = {m: projection_head(towers[m].hidden_size, cfg.head) for m in towers}
        fusion = None
        if cfg.task == "classification":
            num_classes = next(iter(inputs.values())).num_classes
            fusion = FusionClassifier(cfg.fusion, cfg.head.out_dim, len(towers), cfg.pred_hidden_size, num_classes)
    return MultimodalModel(towers, heads, cfg.temperature, fusion)
