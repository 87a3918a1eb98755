"""Towers: one modality's encoder, split into layer groups that stages grow.

A tower is ``embed -> blocks[0:depth] -> final_norm -> pool``, whatever the encoder family (a
transformer from ``transformers`` or a plain torch block sequence such as a CNN; see
``fedray.model.encoders``). The blocks of the full tower are built up front (from the seed or
a checkpoint) so every party holds identical initial weights for blocks appended later;
``depth`` says how many are *present*: blocks at or beyond it are never run, counted, trained
or exchanged.

Layer groups (the unit of freezing and exchange): ``embed``, ``block.<i>``, ``final_norm``.

Hidden states ``h`` are tokens [B, N, d] or feature maps [B, C, H, W] (CNNs); ``mask`` is the
text padding mask [B, N] (1 = token, 0 = padding) or None. Each family's blocks get the mask in
the form they expect (additive, causal) only inside :meth:`Tower.run_blocks`, so what ``embed``
returns (and the prefix cache stores) is the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedray.config import TowerConfig
from fedray.config.families import FAMILIES, IMAGE_NORMS

READERS = ("pixels", "spectrogram", "spectrogram_image", "tokens", "tokens_positions")
ATTENTION = ("plain", "full", "padding", "causal")


@dataclass(frozen=True)
class InputSpec:
    """What a tower's inputs look like, taken from the dataset."""

    channels: int = 3  # images
    image_size: int = 32  # images: square side in pixels
    frames: int = 32  # audio: time frames
    features: int = 13  # audio: features per frame (mel bins / MFCCs)
    vocab_size: int = 2000  # text
    num_classes: int = 0  # the dataset's label names (supervised task)


@dataclass(frozen=True)
class ImageTransform:
    """Images as ``Shard.batch`` gives them ([-1, 1], the dataset's size) to what an encoder reads.

    Resized to ``size`` x ``size`` (bilinear, antialiased; no resize when None or equal), grey
    images repeated to ``channels``, then normalised per channel as ``(pixel01 - mean) / std``.
    Deterministic and parameter-free, so every party applies the same one. The default ``half``
    normalisation at the dataset's size is the identity (today's inputs, bit for bit).
    """

    size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1 and self.channels > 1:
            x = x.expand(-1, self.channels, -1, -1)
        if (self.mean, self.std) == IMAGE_NORMS["half"]:
            return x
        c = x.shape[1]
        mean = torch.tensor(self.mean[:c], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        std = torch.tensor(self.std[:c], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        return ((x + 1.0) * 0.5 - mean) / std


def image_transform(cfg: TowerConfig, channels: int, native: int | None) -> ImageTransform:
    """The transform of an image tower: the configured size, else the encoder's ``native`` one; the
    configured normalisation, else the family's."""
    mean, std = IMAGE_NORMS[cfg.image_norm or FAMILIES[cfg.arch].image_norm or "half"]
    return ImageTransform(cfg.image_size or native, mean, std, channels)


class Tower(nn.Module):
    """An encoder whose blocks are appended stage by stage.

    Args:
        arch: the encoder family (``fedray.config.families``).
        embeddings, blocks, final_norm: the modules of the three kinds of layer group.
        hidden_size: width of the pooled feature (the projection head's input).
        modality: what the tower reads (a vit tower reads images, or spectrograms as audio).
        pooling: ``first`` | ``last`` | ``mean`` (see :meth:`pool`).
        reader: how inputs become hidden states (one of ``READERS``).
        attention: how blocks are called (``plain`` torch modules; transformers blocks with no mask,
            an additive padding mask, or a causal + padding mask).
        transform: the image transform (``pixels`` readers only).
        source: the object the modules belong to (a transformers model or the CNN), kept unregistered
            so that exporting it writes the trained weights (``fedray.model.export``).
    """

    def __init__(self, arch: str, embeddings: nn.Module, blocks: nn.ModuleList, final_norm: nn.Module | None,
                 hidden_size: int, modality: str = "image", *, pooling: str = "first", reader: str = "pixels",
                 attention: str = "full", transform: ImageTransform | None = None,
                 source: nn.Module | None = None) -> None:
        super().__init__()
        assert reader in READERS and attention in ATTENTION, (reader, attention)
        self.arch = arch
        self.modality = modality
        self.embeddings = embeddings
        self.blocks = blocks
        self.final_norm = final_norm
        self.hidden_size = hidden_size
        self.depth = len(blocks)
        self.pooling, self.reader, self.attention, self.transform = pooling, reader, attention, transform
        self._source = (source,)  # a tuple: nn.Module would register (and so count and exchange) it

    @property
    def source(self) -> nn.Module | None:
        return self._source[0]

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
        """Hidden states after the embeddings, and the text padding mask [B, N] (None for other inputs)."""
        if self.reader == "tokens":
            return self.embeddings(input_ids=inputs["text_ids"]), inputs["text_mask"]
        if self.reader == "tokens_positions":  # RoBERTa: positions count real tokens only, from padding_idx + 1
            ids, mask = inputs["text_ids"], inputs["text_mask"]
            positions = mask.cumsum(1) * mask + self.embeddings.padding_idx
            return self.embeddings(input_ids=ids, position_ids=positions), mask
        if self.reader == "spectrogram":
            return self.embeddings(inputs["audio"]), None  # [B, frames, features] -> patches
        if self.reader == "spectrogram_image":
            return self.embeddings(inputs["audio"].unsqueeze(1)), None  # vit over a one-channel spectrogram
        x = inputs["image"]
        return self.embeddings(self.transform(x) if self.transform is not None else x), None

    def run_blocks(self, h: torch.Tensor, mask: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
        """Run blocks ``start..stop-1`` on hidden states ``h``."""
        if self.attention == "plain":
            for block in self.blocks[start:stop]:
                h = block(h)
            return h
        bias = _attention_bias(mask, h, causal=self.attention == "causal") if mask is not None else None
        for block in self.blocks[start:stop]:
            h = block(h, attention_mask=bias)
            h = h[0] if isinstance(h, tuple) else h
        return h

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The tower's feature [B, hidden_size]: the final norm (where the family has one), then pooling.

        ``first`` takes the first token (CLS), ``last`` the last non-padding one (CLIP's EOS), ``mean``
        averages the non-padding tokens, or for feature maps the positions (global average pooling);
        a CNN below full depth has fewer channels than ``hidden_size``: they are zero-padded.
        """
        if self.final_norm is not None:
            h = self.final_norm(h)
        if h.dim() == 4:  # [B, C, H, W]
            feat = h.mean(dim=(2, 3))
            return F.pad(feat, (0, self.hidden_size - feat.shape[1])) if feat.shape[1] < self.hidden_size else feat
        if self.pooling == "first":
            return h[:, 0]
        if self.pooling == "last":
            if mask is None:
                return h[:, -1]
            return h[torch.arange(len(h), device=h.device), mask.sum(1) - 1]
        if mask is None:
            return h.mean(1)
        keep = mask.unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        h, mask = self.embed(inputs)
        return self.pool(self.run_blocks(h, mask, 0, self.depth), mask)


def _attention_bias(mask: torch.Tensor, h: torch.Tensor, causal: bool) -> torch.Tensor:
    """Additive attention mask from a padding mask [B, N]: [B, 1, 1, N], or [B, 1, N, N] with causality."""
    lowest = torch.finfo(h.dtype).min
    if not causal:
        return (1.0 - mask[:, None, None, :].to(h.dtype)) * lowest
    n = mask.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril() & mask[:, None, None, :].bool()
    return torch.zeros(allowed.shape, dtype=h.dtype, device=h.device).masked_fill(~allowed, lowest)
