"""Pretrained towers, as in the paper: embeddings and blocks from a checkpoint, the rest fresh.

Stage 1 gets the pretrained embeddings and every stage appends blocks that hold exactly the
pretrained weights of their index. fedray builds the full-depth tower once, from the checkpoint,
and a block stays untouched (never run, trained, exchanged or synced) until its stage appends it,
so it holds its pretrained values at that moment: the same result as loading it then, without
re-reading the checkpoint every stage. The ViT/AST final LayerNorm is NOT taken from the
checkpoint (PAPER.md §1.2 item 3: identity init) and heads are always fresh.

The text tokenizer of a checkpoint tower is the checkpoint's own (``tokenizer.json``), because
the dataset's tokenizer has a different vocabulary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from fedray.config import ConfigError, ExperimentConfig, TowerConfig
from fedray.config.checkpoint import architecture, read_hf_config

_DROPOUT = {"distilbert": ("dropout", "attention_dropout")}
_DEFAULT_DROPOUT = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def load_hf_model(cfg: TowerConfig, where: str = "model.towers") -> nn.Module:
    """The checkpoint's transformers model with eager attention and the tower's dropout.

    Raises ConfigError when the checkpoint is missing or its architecture differs from ``cfg``
    (configs from the YAML loader are filled from the checkpoint, so only hand-built ones can differ).
    """
    from transformers import AutoModel

    assert cfg.checkpoint is not None
    hf_cfg = read_hf_config(cfg.checkpoint, f"{where}.checkpoint")
    for key, value in architecture(hf_cfg, cfg.checkpoint, f"{where}.checkpoint").items():
        if getattr(cfg, key) != value:
            raise ConfigError(f"config key '{where}.{key}': {getattr(cfg, key)!r} conflicts with checkpoint "
                              f"{cfg.checkpoint!r}, which has {value!r}")
    for attr in _DROPOUT.get(cfg.arch, _DEFAULT_DROPOUT):  # fedray's dropout, not the checkpoint's
        setattr(hf_cfg, attr, cfg.dropout)
    return AutoModel.from_pretrained(cfg.checkpoint, config=hf_cfg, attn_implementation="eager")


def reset_fresh_parts(final_norm: nn.Module | None) -> None:
    """The final LayerNorm starts at identity (gamma 1, beta 0), not at its pretrained values."""
    if final_norm is not None:
        final_norm.reset_parameters()


def tokenizer_file(checkpoint: str) -> str | None:
    """``tokenizer.json`` of a checkpoint directory (or of a cached hub download), if it has one."""
    local = Path(checkpoint) / "tokenizer.json"
    if local.is_file():
        return str(local)
    if Path(checkpoint).exists():
        return None
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(checkpoint, "tokenizer.json")
    except Exception:  # offline, not cached, or no such file: the dataset's tokenizer is used and checked
        return None


def checkpoint_inputs(cfg: ExperimentConfig, info: Any) -> Any:
    """``info`` (a DatasetInfo) adapted to checkpoint towers: their tokenizer, checked input shapes."""
    for name, tower in cfg.model.towers.items():
        if tower.checkpoint is None:
            continue
        hf = read_hf_config(tower.checkpoint, f"model.towers.{name}.checkpoint")
        where = f"model.towers.{name}.checkpoint"
        if name == "text":
            tok = tokenizer_file(tower.checkpoint)
            if tok is not None:
                from tokenizers import Tokenizer

                vocab = Tokenizer.from_file(tok).get_vocab_size()
                info = dataclasses.replace(info, tokenizer=tok,
                                           inputs=dataclasses.replace(info.inputs, vocab_size=vocab))
            if info.inputs.vocab_size > hf.vocab_size:
                raise ConfigError(f"config key '{where}': checkpoint {tower.checkpoint!r} has no tokenizer.json and its "
                                  f"vocabulary ({hf.vocab_size}) is smaller than the dataset tokenizer's "
                                  f"({info.inputs.vocab_size})")
        elif tower.arch == "vit" and name == "image":
            have = (info.inputs.channels, info.inputs.image_size)
            if have != (hf.num_channels, hf.image_size):
                raise ConfigError(f"config key '{where}': checkpoint {tower.checkpoint!r} expects {hf.num_channels}x"
                                  f"{hf.image_size}px images but dataset {info.name} has {have[0]}x{have[1]}px")
        elif tower.arch == "ast":
            have = (info.inputs.frames, info.inputs.features)
            if have != (hf.max_length, hf.num_mel_bins):
                raise ConfigError(f"config key '{where}': checkpoint {tower.checkpoint!r} expects {hf.max_length} "
                                  f"frames x {hf.num_mel_bins} bins but dataset {info.name} has {have[0]} x {have[1]}")
    return info
