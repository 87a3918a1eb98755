"""Pretrained towers, as in the paper: embeddings and blocks from a checkpoint, the rest fresh.

Stage 1 gets the pretrained embeddings and every stage appends blocks that hold exactly the
pretrained weights of their index. fedray builds the full-depth tower once, from the checkpoint
(``fedray.model.encoders``), and a block stays untouched (never run, trained, exchanged or synced)
until its stage appends it, so it holds its pretrained values at that moment: the same result as
loading it then, without re-reading the checkpoint every stage. The final LayerNorm is NOT taken
from the checkpoint (PAPER.md §1.2 item 3: identity init) and heads are always fresh.

The text tokenizer of a checkpoint tower is the checkpoint's own (``tokenizer.json``), because
the dataset's tokenizer has a different vocabulary. Images are resized and normalised to what the
encoder expects (``fedray.model.towers.ImageTransform``), so a checkpoint's image size need not
match the dataset's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fedray.config import ConfigError, ExperimentConfig
from fedray.config.checkpoint import read_hf_config, tower_config


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
        if tower.checkpoint is None or tower.arch == "efficientnet_lite0":
            continue
        where = f"model.towers.{name}.checkpoint"
        hf = tower_config(read_hf_config(tower.checkpoint, where), tower.arch)
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
            positions = hf.max_position_embeddings - (2 if tower.arch == "roberta" else 0)  # RoBERTa: padding offset
            if tower.max_length > positions:
                raise ConfigError(f"config key 'model.towers.{name}.max_length': {tower.max_length} tokens, but "
                                  f"checkpoint {tower.checkpoint!r} has {positions} positions")
        elif name == "image":
            if info.inputs.channels not in (1, hf.num_channels):  # grey images are repeated to the tower's channels
                raise ConfigError(f"config key '{where}': checkpoint {tower.checkpoint!r} reads {hf.num_channels}-"
                                  f"channel images but dataset {info.name} has {info.inputs.channels} channels")
        elif tower.arch == "ast":
            have = (info.inputs.frames, info.inputs.features)
            if have != (hf.max_length, hf.num_mel_bins):
                raise ConfigError(f"config key '{where}': checkpoint {tower.checkpoint!r} expects {hf.max_length} "
                                  f"frames x {hf.num_mel_bins} bins but dataset {info.name} has {have[0]} x {have[1]}")
    return info
