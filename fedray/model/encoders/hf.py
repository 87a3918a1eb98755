"""Encoders from ``transformers``: a table of where each family keeps its parts and how it reads inputs.

Every family is built from a small random config (the tower's keys) or loaded from a checkpoint
with eager attention (plain matmuls: deterministic and countable on every device). The tower
takes the model's embeddings, its ordered blocks and its final LayerNorm; whatever else the
model holds (BERT's pooler, SigLIP's attention-pooling head) is not part of the tower: it is
never run, trained or exchanged, and stays in the model object only so export writes a
complete model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from torch import nn

from fedray.config import ConfigError, TowerConfig
from fedray.config.checkpoint import architecture, read_hf_config, tower_config
from fedray.model.towers import InputSpec, Tower, image_transform

_HIDDEN_DROPOUT = ("hidden_dropout_prob", "attention_probs_dropout_prob")


@dataclass(frozen=True)
class HFEncoder:
    """One transformers family: its classes, where its parts live and how it reads inputs."""

    config_cls: str
    model_cls: str
    embeddings: tuple[str, ...]  # attribute paths; several become one nn.Sequential (CLIP: embeddings + pre-LN)
    blocks: str
    final_norm: str | None
    reader: str  # see fedray.model.towers.READERS
    attention: str  # see fedray.model.towers.ATTENTION
    dropout_keys: tuple[str, ...] = _HIDDEN_DROPOUT
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra_config: dict[str, Any] = field(default_factory=dict)  # random init only

    def random_config(self, cfg: TowerConfig, spec: InputSpec, modality: str) -> Any:
        """A transformers config of the tower's shape (every party builds the same one)."""
        common: dict[str, Any] = dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                                      num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size)
        if self.reader == "pixels" and modality == "audio":  # a spectrogram as a one-channel (frames x features) image
            common.update(image_size=(spec.frames, spec.features), patch_size=cfg.patch_size, num_channels=1)
        elif self.reader == "pixels":
            common.update(image_size=cfg.image_size or spec.image_size, patch_size=cfg.patch_size,
                          num_channels=spec.channels)
        elif self.reader == "spectrogram":
            stride = cfg.patch_stride or cfg.patch_size
            common.update(num_mel_bins=spec.features, max_length=spec.frames, patch_size=cfg.patch_size,
                          frequency_stride=stride, time_stride=stride)
        else:
            positions = max(cfg.max_length, 64) + (2 if self.reader == "tokens_positions" else 0)  # RoBERTa offsets
            common.update(vocab_size=spec.vocab_size, max_position_embeddings=positions)
        common.update({k: cfg.dropout for k in self.dropout_keys}, **self.extra_config)
        if self.config_cls == "DistilBertConfig":  # DistilBERT names its own keys
            common = dict(vocab_size=spec.vocab_size, max_position_embeddings=common["max_position_embeddings"],
                          dim=cfg.hidden_size, n_layers=cfg.num_layers, n_heads=cfg.num_heads,
                          hidden_dim=cfg.intermediate_size, dropout=cfg.dropout, attention_dropout=cfg.dropout)
        return getattr(transformers, self.config_cls)(**common)

    def build(self, cfg: TowerConfig, spec: InputSpec, modality: str, seed: int) -> Tower:
        """A full-depth tower: random from ``seed``, or from ``cfg.checkpoint`` (final norm reset to identity)."""
        model_cls = getattr(transformers, self.model_cls)
        if cfg.checkpoint is not None:
            hf = self.load(cfg, modality, f"model.towers.{modality}")
        else:
            hf_cfg = self.random_config(cfg, spec, modality)
            hf_cfg._attn_implementation = "eager"  # plain matmuls: deterministic and countable on every device
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                hf = model_cls(hf_cfg, **self.model_kwargs)
        tower = self.wrap(hf, cfg, spec, modality)
        if cfg.checkpoint is not None and tower.final_norm is not None:
            tower.final_norm.reset_parameters()  # PAPER.md §1.2 item 3: the final LayerNorm starts at identity
        return tower

    def wrap(self, hf: nn.Module, cfg: TowerConfig, spec: InputSpec, modality: str) -> Tower:
        """The tower over ``hf``'s modules (shared, not copied: training the tower trains ``hf``)."""
        parts = [_get(hf, p) for p in self.embeddings]
        embeddings = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
        final_norm = _get(hf, self.final_norm) if self.final_norm else None
        config = hf.config
        hidden = config.hidden_size if hasattr(config, "hidden_size") else config.dim
        reader = "spectrogram_image" if self.reader == "pixels" and modality == "audio" else self.reader
        transform = image_transform(cfg, config.num_channels, config.image_size) if reader == "pixels" else None
        return Tower(cfg.arch, embeddings, _get(hf, self.blocks), final_norm, hidden, modality, pooling=cfg.pool,
                     reader=reader, attention=self.attention, transform=transform, source=hf)

    def load(self, cfg: TowerConfig, modality: str, where: str) -> nn.Module:
        """The checkpoint's model with eager attention and the tower's dropout.

        Raises ConfigError when the checkpoint is missing, its architecture differs from ``cfg`` (configs
        from the YAML loader are filled from the checkpoint, so only hand-built ones can differ), or it
        lacks weights of the tower's embeddings or blocks (they would silently start random).
        """
        assert cfg.checkpoint is not None
        key = f"{where}.checkpoint"
        full = read_hf_config(cfg.checkpoint, key)
        for name, value in architecture(full, cfg.checkpoint, key, modality).items():
            if getattr(cfg, name) not in (value, None):  # None: image_size left to the checkpoint
                raise ConfigError(f"config key '{where}.{name}': {getattr(cfg, name)!r} conflicts with checkpoint "
                                  f"{cfg.checkpoint!r}, which has {value!r}")
        hf_cfg = tower_config(full, cfg.arch)
        for attr in self.dropout_keys:  # fedray's dropout, not the checkpoint's
            setattr(hf_cfg, attr, cfg.dropout)
        with quiet_progress():  # no "Loading weights" bar in every client's and the server's output
            hf, info = getattr(transformers, self.model_cls).from_pretrained(
                cfg.checkpoint, config=hf_cfg, attn_implementation="eager", output_loading_info=True,
                **self.model_kwargs)
        skip = (self.final_norm or "<none>") + "."
        needed = [k for k in info["missing_keys"]
                  if k.startswith(tuple(p + "." for p in (*self.embeddings, self.blocks))) and not k.startswith(skip)]
        if needed:
            raise ConfigError(f"config key '{key}': checkpoint {cfg.checkpoint!r} has no weights for "
                              f"{', '.join(sorted(needed)[:4])}{' ...' if len(needed) > 4 else ''}; it is not a "
                              f"{cfg.arch} {modality} encoder fedray can load")
        return hf


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


_NO_POOLER = {"add_pooling_layer": False}
_TEXT_IDS = {"pad_token_id": 0, "bos_token_id": None, "eos_token_id": 2}  # ids inside any dataset vocabulary

HF_ENCODERS: dict[str, HFEncoder] = {
    "vit": HFEncoder("ViTConfig", "ViTModel", ("embeddings",), "layers", "layernorm", "pixels", "full",
                     model_kwargs=_NO_POOLER),
    "deit": HFEncoder("DeiTConfig", "DeiTModel", ("embeddings",), "layers", "layernorm", "pixels", "full",
                      model_kwargs=_NO_POOLER),
    "clip_vision": HFEncoder("CLIPVisionConfig", "CLIPVisionModel", ("embeddings", "pre_layrnorm"), "encoder.layers",
                             "post_layernorm", "pixels", "full", ("attention_dropout",)),
    "siglip_vision": HFEncoder("SiglipVisionConfig", "SiglipVisionModel", ("embeddings",), "encoder.layers",
                               "post_layernorm", "pixels", "full", ("attention_dropout",),
                               extra_config={"vision_use_head": False}),
    "ast": HFEncoder("ASTConfig", "ASTModel", ("embeddings",), "layers", "layernorm", "spectrogram", "full"),
    "bert": HFEncoder("BertConfig", "BertModel", ("embeddings",), "encoder.layer", None, "tokens", "padding",
                      model_kwargs=_NO_POOLER),
    "roberta": HFEncoder("RobertaConfig", "RobertaModel", ("embeddings",), "encoder.layer", None, "tokens_positions",
                         "padding", model_kwargs=_NO_POOLER, extra_config={"pad_token_id": 1}),
    "distilbert": HFEncoder("DistilBertConfig", "DistilBertModel", ("embeddings",), "transformer.layer", None,
                            "tokens", "padding", ("dropout", "attention_dropout")),
    "clip_text": HFEncoder("CLIPTextConfig", "CLIPTextModel", ("embeddings",), "encoder.layers", "final_layer_norm",
                           "tokens", "causal", ("attention_dropout",), extra_config=_TEXT_IDS),
    "siglip_text": HFEncoder("SiglipTextConfig", "SiglipTextModel", ("embeddings",), "encoder.layers",
                             "final_layer_norm", "tokens", "padding", ("attention_dropout",), extra_config=_TEXT_IDS),
}


@contextmanager
def quiet_progress() -> Iterator[None]:
    """transformers' progress bars ("Loading weights", "Writing model shards") off for the block; the switch is
    process-wide, so it is restored after."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
