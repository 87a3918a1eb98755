"""Losses: symmetric InfoNCE over every pair of modalities."""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F


def info_nce(za: torch.Tensor, zb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives; ``za``, ``zb`` are L2-normalised [B, D]."""
    logits = za @ zb.T / temperature  # [B, B]; the diagonal holds the positive pairs
    target = torch.arange(za.shape[0], device=za.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def contrastive_loss(z: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean symmetric InfoNCE over all modality pairs (one pair for image-text, three for three towers)."""
    pairs = list(combinations(sorted(z), 2))
    return sum(info_nce(z[a], z[b], temperature) for a, b in pairs) / len(pairs)
