"""Towers: one modality's transformer encoder, split into layer groups that stages grow.

A tower is ``embed -> blocks[0:depth] -> final_norm -> CLS token``. The blocks of the full
tower are built up front (from the seed or a checkpoint) so every party holds identical
initial weights for blocks appended later; ``depth`` says how many are *present*: blocks
at or beyond it are never run, counted, trained or exchanged.

Layer groups (the unit of freezing and exchange): ``embed``, ``block.<i>``, ``final_norm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    ASTConfig,
    ASTModel,
    BertConfig,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    PretrainedConfig,
    ViTConfig,
    ViTModel,
)

from fedray.config import TowerConfig


@dataclass(frozen=True)
class InputSpec:
    """What a tower's inputs look like, taken from the dataset."""

    channels: int = 3  # images
    image_size: int = 32  # images: square side in pixels
    frames: int = 32  # audio: time frames
    features: int = 13  # audio: features per frame (mel bins / MFCCs)
    vocab_size: int = 2000  # text
    num_classes: int = 0  # the dataset's label names (supervised task)


class Tower(nn.Module):
    """A transformer encoder whose blocks are appended stage by stage."""

    def __init__(self, arch: str, embeddings: nn.Module, blocks: nn.ModuleList, final_norm: nn.Module | None,
                 hidden_size: int, modality: str = "image") -> None:
        super().__init__()
        self.arch = arch
        self.modality = modality  # a vit tower reads images, or spectrograms when it encodes audio
        self.embeddings = embeddings
        self.blocks = blocks
        self.final_norm = final_norm
        self.hidden_size = hidden_size
        self.depth = len(blocks)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def groups(self, depth: int | None = None) -> list[str]:
        """Layer-group names present at ``depth`` (default: the current depth)."""
        depth = self.depth if depth is None else depth
        names = ["embed"] + [f"block.{i}" for i in range(depth)]
        return names + (["final_norm"] if self.final_norm is not None else [])

    def group_module(self, group: str) -> nn.Module:
        if group == "embed":
            return self.embeddings
        if group == "final_norm":
            assert self.final_norm is not None
            return self.final_norm
        return self.blocks[int(group.split(".")[1])]

    def embed(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embeddings [B, N, d] and an additive attention mask [B, 1, 1, N] (text) or None."""
        if self.arch in ("bert", "distilbert"):
            ids, mask = inputs["text_ids"], inputs["text_mask"]
            h = self.embeddings(input_ids=ids)
            additive = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            return h, additive
        if self.arch == "ast":
            return self.embeddings(inputs["audio"]), None  # [B, frames, features] -> patches
        x = inputs["audio"].unsqueeze(1) if self.modality == "audio" else inputs["image"]  # vit over spectrograms
        return self.embeddings(x), None

    def run_blocks(self, h: torch.Tensor, mask: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
        """Run blocks ``start..stop-1`` on hidden states ``h`` [B, N, d]."""
        for block in self.blocks[start:stop]:
            h = block(h, attention_mask=mask)
            h = h[0] if isinstance(h, tuple) else h
        return h

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The first-token feature [B, d] (after the final LayerNorm where the architecture has one).

        ``mask`` is the additive attention mask of :meth:`embed` (text) or None; first-token pooling does not
        need it, a pooling over tokens does.
        """
        if self.final_norm is not None:
            h = self.final_norm(h)
        return h[:, 0]

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        h, mask = self.embed(inputs)
        return self.pool(self.run_blocks(h, mask, 0, self.depth), mask)


def _hf_config(cfg: TowerConfig, spec: InputSpec) -> PretrainedConfig:
    common = dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                  intermediate_size=cfg.intermediate_size, hidden_dropout_prob=cfg.dropout,
                  attention_probs_dropout_prob=cfg.dropout)
    if cfg.arch == "vit" and spec.channels and spec.image_size:
        return ViTConfig(image_size=spec.image_size, patch_size=cfg.patch_size, num_channels=spec.channels, **common)
    if cfg.arch == "bert":
        return BertConfig(vocab_size=spec.vocab_size, max_position_embeddings=max(cfg.max_length, 64), **common)
    if cfg.arch == "distilbert":
        return DistilBertConfig(vocab_size=spec.vocab_size, max_position_embeddings=max(cfg.max_length, 64),
                                dim=cfg.hidden_size, n_layers=cfg.num_layers, n_heads=cfg.num_heads,
                                hidden_dim=cfg.intermediate_size, dropout=cfg.dropout, attention_dropout=cfg.dropout)
    if cfg.arch == "ast":
        stride = cfg.patch_stride or cfg.patch_size
        return ASTConfig(num_mel_bins=spec.features, max_length=spec.frames, patch_size=cfg.patch_size,
                         frequency_stride=stride, time_stride=stride, **common)
    raise ValueError(f"cannot build a {cfg.arch} tower")


def build_tower(cfg: TowerConfig, spec: InputSpec, modality: str, seed: int) -> Tower:
    """Build a full-depth tower from a config (random init from ``seed``) or a checkpoint."""
    if cfg.checkpoint is not None:  # pretrained embeddings and blocks; see fedray.model.pretrained
        from fedray.model.pretrained import load_hf_model, reset_fresh_parts

        tower = _wrap(load_hf_model(cfg, f"model.towers.{modality}"), cfg.arch)
        reset_fresh_parts(tower.final_norm)
        return tower
    else:
        hf_cfg = _hf_config(cfg, spec)
        if modality == "audio" and cfg.arch == "vit":  # spectrogram as a one-channel image
            hf_cfg = ViTConfig(**{**hf_cfg.to_dict(), "image_size": (spec.frames, spec.features), "num_channels": 1})
        hf_cfg._attn_implementation = "eager"  # plain matmuls: deterministic and countable on every device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hf = {"vit": ViTModel, "bert": BertModel, "distilbert": DistilBertModel, "ast": ASTModel}[cfg.arch](
                hf_cfg, **({"add_pooling_layer": False} if cfg.arch in ("vit", "bert") else {}))
    return _wrap(hf, cfg.arch, modality)


def _wrap(hf: nn.Module, arch: str, modality: str = "image") -> Tower:
    hidden = hf.config.hidden_size if hasattr(hf.config, "hidden_size") else hf.config.dim
    if arch in ("vit", "ast"):
        return Tower(arch, hf.embeddings, hf.layers, hf.layernorm, hidden, modality)
    if arch == "bert":
        return Tower(arch, hf.embeddings, hf.encoder.layer, None, hidden)
    if arch == "distilbert":
        return Tower(arch, hf.embeddings, hf.transformer.layer, None, hidden)
    raise ValueError(f"unknown architecture {arch!r}")

