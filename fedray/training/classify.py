"""Evaluation of the supervised task: accuracy pooled over every test sample, and macro-F1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fedray.data import Shard
from fedray.model import MultimodalModel
from fedray.training.finite import NonFiniteError, first_non_finite


def accuracy_macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """Pooled accuracy and macro-F1: the unweighted mean of per-class F1 over the classes that occur in
    ``target`` or ``pred`` (a class in neither has no defined F1 and is left out)."""
    acc = (pred == target).float().mean().item()
    f1s = []
    for c in range(num_classes):
        tp = ((pred == c) & (target == c)).sum().item()
        fp = ((pred == c) & (target != c)).sum().item()
        fn = ((pred != c) & (target == c)).sum().item()
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return acc, (sum(f1s) / len(f1s) if f1s else 0.0)


@torch.no_grad()
def evaluate_classifier(model: MultimodalModel, shard: Shard, batch_size: int) -> dict[str, float]:
    """``eval/loss`` (mean cross-entropy), ``eval/accuracy`` and ``eval/macro_f1`` over the whole shard."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds, targets, loss_sum = [], [], 0.0
    for start in range(0, len(shard), batch_size):
        batch = {k: v.to(device) for k, v in shard.batch(torch.arange(start, min(start + batch_size, len(shard)))).items()}
        logits = model.logits(batch)
        found = first_non_finite({"logits": logits})
        if found is not None:
            raise NonFiniteError(f"evaluation logits (held-out rows {start}..{start + len(logits) - 1})", found[1])
        loss_sum += F.cross_entropy(logits, batch["label"], reduction="sum").item()
        preds.append(logits.argmax(-1).cpu())
        targets.append(batch["label"].cpu())
    model.train(was_training)
    pred, target = torch.cat(preds), torch.cat(targets)
    num_classes = model.fusion.pred[-1].out_features if model.fusion is not None else 0
    acc, f1 = accuracy_macro_f1(pred, target, num_classes)
    return {"eval/loss": loss_sum / len(target), "eval/accuracy": acc, "eval/macro_f1": f1}
