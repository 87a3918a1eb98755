"""Fusion and prediction heads for the supervised task (PAPER.md §3.2).

Each fusion takes the M projections p_m [B, D] (modalities in a fixed order) and returns one
vector; the prediction head maps it to class logits. Output widths for M=2, as in the paper's
``FusionHead*``: concat 2D, add 3D, attention 3D, co_attention 4D (in general M·D, (M+1)·D,
(M+1)·D, 2M·D).
"""

from __future__ import annotations

import torch
from torch import nn


class ConcatFusion(nn.Module):
    """[p_1; ...; p_M]."""

    def __init__(self, dim: int, num: int) -> None:
        super().__init__()
        self.out_dim = dim * num

    def forward(self, ps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(ps, dim=-1)


class AddFusion(nn.Module):
    """[p_1; ...; p_M; Σ p_m]."""

    def __init__(self, dim: int, num: int) -> None:
        super().__init__()
        self.out_dim = dim * (num + 1)

    def forward(self, ps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(ps + [torch.stack(ps).sum(0)], dim=-1)


class AttentionFusion(nn.Module):
    """[concat; Σ_m a_m · W_m p_m] with a = softmax(Linear(M·D → M)(concat)) (torchmultimodal style)."""

    def __init__(self, dim: int, num: int) -> None:
        super().__init__()
        self.attn = nn.Linear(dim * num, num)
        self.proj = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num))
        self.out_dim = dim * (num + 1)

    def forward(self, ps: list[torch.Tensor]) -> torch.Tensor:
        cat = torch.cat(ps, dim=-1)
        weights = self.attn(cat).softmax(dim=-1)  # [B, M]
        projected = torch.stack([proj(p) for proj, p in zip(self.proj, ps)], dim=1)  # [B, M, D]
        return torch.cat([cat, (weights.unsqueeze(-1) * projected).sum(1)], dim=-1)


class CoAttentionFusion(nn.Module):
    """[concat; C_1; ...; C_M]: DCN-style co-attention on each p_m read as a sequence of D scalars.

    Each scalar is embedded to ``r`` features (Linear(1 → r)); the affinity of modality a's
    element i with b's element j is L_ab[i, j] = tanh(x_a[i] · W · x_b[j]) ([B, D, D]);
    C_a averages, over the other modalities b, the attention of a's elements over p_b.
    """

    def __init__(self, dim: int, num: int, rank: int = 8) -> None:
        super().__init__()
        self.embed = nn.ModuleList(nn.Linear(1, rank) for _ in range(num))
        self.affinity = nn.Parameter(torch.eye(rank) / rank**0.5)
        self.out_dim = dim * 2 * num

    def forward(self, ps: list[torch.Tensor]) -> torch.Tensor:
        xs = [emb(p.unsqueeze(-1)) for emb, p in zip(self.embed, ps)]  # each [B, D, r]
        ctx = []
        for a, xa in enumerate(xs):
            parts = []
            for b, xb in enumerate(xs):
                if a != b:
                    aff = torch.tanh(xa @ self.affinity @ xb.transpose(1, 2))  # [B, D, D]
                    parts.append((aff.softmax(dim=-1) @ ps[b].unsqueeze(-1)).squeeze(-1))  # [B, D]
            ctx.append(torch.stack(parts).mean(0))
        return torch.cat(ps + ctx, dim=-1)


class FusionClassifier(nn.Module):
    """Fusion head then prediction head Linear(F → hidden) - ReLU - Linear(hidden → classes)."""

    def __init__(self, fusion: str, dim: int, num_modalities: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        cls = {"concat": ConcatFusion, "add": AddFusion, "attention": AttentionFusion,
               "co_attention": CoAttentionFusion}[fusion]
        self.fuse = cls(dim, num_modalities)
        self.pred = nn.Sequential(nn.Linear(self.fuse.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, ps: list[torch.Tensor]) -> torch.Tensor:
        """Class logits [B, num_classes] from projections ``ps`` (each [B, D])."""
        return self.pred(self.fuse(ps))
