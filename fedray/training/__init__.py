"""Local training, aggregation and evaluation: plain torch, no Ray."""

from fedray.training.aggregate import PartialSum, combine, nbytes, weighted_mean
from fedray.training.evaluate import evaluate, recall_at_k
from fedray.training.local import LocalResult, configure_trainable, local_train, make_optimizer

__all__ = ["LocalResult", "PartialSum", "combine", "configure_trainable", "evaluate", "local_train",
           "make_optimizer", "nbytes", "recall_at_k", "weighted_mean"]
