"""Local training, aggregation strategies and evaluation: plain torch and numpy, no Ray."""

from fedray.training.aggregate import PartialSum, combine, nbytes, weighted_mean
from fedray.training.evaluate import evaluate, recall_at_k
from fedray.training.local import LocalResult, configure_trainable, local_train, make_optimizer, proximal_term
from fedray.training.strategies import Aggregator, FedAvg, ServerOptimizer, make_aggregator

__all__ = ["Aggregator", "FedAvg", "LocalResult", "PartialSum", "ServerOptimizer", "combine", "configure_trainable",
           "evaluate", "local_train", "make_aggregator", "make_optimizer", "nbytes", "proximal_term", "recall_at_k",
           "weighted_mean"]
