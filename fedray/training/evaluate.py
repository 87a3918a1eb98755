"""Evaluation of the global model on the held-out split: cross-modal recall@K and the loss."""

from __future__ import annotations

from itertools import permutations

import torch

from fedray.data import Shard
from fedray.model import MultimodalModel
from fedray.model.losses import contrastive_loss

KS = (1, 5, 10)


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """Fraction of queries whose paired gallery item (same row) ranks in the top K by cosine similarity."""
    sim = query @ gallery.T  # [N, N]
    positive = sim.diagonal().unsqueeze(1)
    rank = (sim > positive).sum(dim=1)  # items strictly closer than the pair; ties favour the pair
    return {k: (rank < k).float().mean().item() for k in ks}


@torch.no_grad()
def evaluate(model: MultimodalModel, shard: Shard, batch_size: int) -> dict[str, float]:
    """``eval/loss`` and ``eval/<a>2<b>_r<K>`` for every ordered pair of modalities (i=image, t=text, a=audio)."""
    if model.fusion is not None:  # supervised task: accuracy and macro-F1 instead of retrieval
        from fedray.training.classify import evaluate_classifier

        return evaluate_classifier(model, shard, batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n = len(shard)
    zs: dict[str, list[torch.Tensor]] = {}
    losses = []
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        batch = {k: v.to(device) for k, v in shard.batch(idx).items()}
        z = model.encode(batch)
        if len(idx) > 1:
            losses.append(contrastive_loss(z, model.temperature).item() * len(idx))
        for m, v in z.items():
            zs.setdefault(m, []).append(v.float().cpu())
    model.train(was_training)
    emb = {m: torch.cat(v) for m, v in zs.items()}
    metrics = {"eval/loss": sum(losses) / max(1, sum(min(batch_size, n - s) for s in range(0, n, batch_size)
                                                     if min(batch_size, n - s) > 1))}
    for a, b in permutations(emb, 2):
        for k, r in recall_at_k(emb[a], emb[b]).items():
            metrics[f"eval/{a[0]}2{b[0]}_r{k}"] = r
    return metrics
