"""Evaluation of the global model on the held-out split: cross-modal recall@K and the loss."""

from __future__ import annotations

from itertools import permutations

import torch

from fedray.data import Shard
from fedray.model import MultimodalModel
from fedray.model.losses import contrastive_loss
from fedray.training.finite import NonFiniteError, check_finite, first_non_finite

KS = (1, 5, 10)
BOOTSTRAP = 1000  # resamples of the held-out queries for a single run's 95% interval


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """Fraction of queries whose paired gallery item (same row) ranks in the top K by similarity."""
    return {k: hits.mean().item() for k, hits in recall_hits(query, gallery, ks).items()}


def recall_hits(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[int, torch.Tensor]:
    """Per query, the probability that its paired gallery item (same row) ranks in the top K by similarity.

    Ties never favour the pair: a query with ``g`` items strictly closer than its pair and ``t`` others exactly
    as close scores the expectation under a uniformly random order of the tied items, P(rank < K) =
    clamp((K - g) / (t + 1), 0, 1). Constant (collapsed) embeddings therefore score chance, K / N, and not 1.
    Non-finite embeddings raise :class:`NonFiniteError`: NaN compares false and would rank every pair first.
    """
    for name, z in (("query", query), ("gallery", gallery)):
        found = first_non_finite({name: z})
        if found is not None:
            raise NonFiniteError(f"evaluation embeddings ({name})", found[1])
    sim = query @ gallery.T  # [N, N]
    positive = sim.diagonal().unsqueeze(1)  # [N, 1]
    greater = (sim > positive).sum(dim=1).double()  # [N]
    ties = (sim == positive).sum(dim=1).double() - 1  # [N], the pair itself excluded
    return {k: ((k - greater) / (ties + 1)).clamp(0.0, 1.0) for k in ks}


def bootstrap_ci95(hits: torch.Tensor, resamples: int = BOOTSTRAP, seed: int = 0) -> float:
    """Half-width of the 95% percentile-bootstrap interval of ``hits.mean()`` over the held-out queries (the
    gallery fixed): how much the figure owes to which pairs happened to be held out. Seeded: reproducible."""
    gen = torch.Generator().manual_seed(seed)
    means = hits[torch.randint(len(hits), (resamples, len(hits)), generator=gen)].mean(dim=1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=means.dtype)).tolist()
    return (hi - lo) / 2


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
        for m, v in z.items():
            found = first_non_finite({m: v})
            if found is not None:  # name the tower and the held-out rows of the batch
                rows = f"held-out rows {start}..{start + len(idx) - 1}"
                raise NonFiniteError(f"evaluation embeddings of the {m} tower ({rows})", found[1])
        if len(idx) > 1:
            losses.append(contrastive_loss(z, model.temperature).item() * len(idx))
        for m, v in z.items():
            zs.setdefault(m, []).append(v.float().cpu())
    model.train(was_training)
    emb = {m: torch.cat(v) for m, v in zs.items()}
    metrics = {"eval/loss": sum(losses) / max(1, sum(min(batch_size, n - s) for s in range(0, n, batch_size)
                                                     if min(batch_size, n - s) > 1))}
    check_finite(metrics["eval/loss"], "eval/loss")
    for a, b in permutations(emb, 2):
        for k, hits in recall_hits(emb[a], emb[b]).items():
            metrics[f"eval/{a[0]}2{b[0]}_r{k}"] = hits.mean().item()
            metrics[f"eval/{a[0]}2{b[0]}_r{k}_ci95"] = bootstrap_ci95(hits)
    return metrics
