"""The encoder registry: one builder per family of ``fedray.config.families``.

A builder maps its family onto the tower interface (embeddings, ordered blocks, final norm, how a
block is called, how inputs are embedded, pooling): ``transformers`` families through a table in
:mod:`fedray.model.encoders.hf`, plain torch block sequences such as EfficientNet-Lite0 through
their own module. Adding a family = an entry in ``FAMILIES`` plus a builder here.
"""

from __future__ import annotations

from typing import Protocol

from fedray.config import TowerConfig
from fedray.model.encoders.efficientnet import EfficientNetEncoder
from fedray.model.encoders.hf import HF_ENCODERS
from fedray.model.towers import InputSpec, Tower


class Encoder(Protocol):
    def build(self, cfg: TowerConfig, spec: InputSpec, modality: str, seed: int) -> Tower: ...


ENCODERS: dict[str, Encoder] = {**HF_ENCODERS, "efficientnet_lite0": EfficientNetEncoder()}


def encoder(arch: str) -> Encoder:
    """The builder of family ``arch`` (config validation has checked the name)."""
    return ENCODERS[arch]


def build_tower(cfg: TowerConfig, spec: InputSpec, modality: str, seed: int) -> Tower:
    """Build a full-depth tower from a config (random init from ``seed``), a checkpoint or packaged weights."""
    return encoder(cfg.arch).build(cfg, spec, modality, seed)
