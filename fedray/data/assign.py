"""Which training rows each client holds: labels (real or k-means pseudo-labels), partitioner, report.

Runs once on the driver; clients later load only their own rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedray.config import ConfigError, ExperimentConfig
from fedray.data.dataset import DatasetInfo, split_rows
from fedray.data.features import thumbnails
from fedray.data.partition import dirichlet, entropy, histograms, iid, kmeans


def assign_clients(cfg: ExperimentConfig, info: DatasetInfo) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    """Dataset row indices per client and a JSON-ready report (sizes, label histograms, entropies)."""
    part = cfg.data.partition
    use_kmeans = part.label_column == "kmeans"
    train_rows, labels = split_rows(info, "train", None if use_kmeans else part.label_column)
    if cfg.data.train_limit and cfg.data.train_limit < len(train_rows):
        keep = sample_rows(labels, len(train_rows), cfg.data.train_limit, cfg.train.seed)
        train_rows, labels = train_rows[keep], None if labels is None else labels[keep]
    if len(train_rows) == 0:
        raise ConfigError(f"config key 'data.source': dataset {info.path} has no rows in split 'train'")
    if use_kmeans:
        labels = kmeans(thumbnails(info, train_rows), part.clusters, cfg.train.seed)
    min_size = part.min_size or cfg.train.batch_size
    if part.kind == "dirichlet":
        if labels is None:
            raise ConfigError(f"config key 'data.partition.label_column': dataset {info.path} has no column "
                              f"{part.label_column!r}; name a label column or use 'kmeans'")
        _, labels = np.unique(labels, return_inverse=True)  # dense class ids 0..C-1
        parts = dirichlet(labels, cfg.data.num_clients, part.beta, cfg.train.seed, min_size)
    else:
        parts = iid(len(train_rows), cfg.data.num_clients, cfg.train.seed)
    num_classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
    hists = histograms(labels, parts, num_classes)
    report = {
        "kind": part.kind, "beta": part.beta if part.kind == "dirichlet" else None,
        "label_column": part.label_column, "seed": cfg.train.seed, "min_size": min_size,
        "num_classes": num_classes,
        "clients": [{"client": i, "size": int(len(p)), "label_histogram": h, "label_entropy": entropy(h)}
                    for i, (p, h) in enumerate(zip(parts, hists))],
    }
    return tuple(train_rows[p] for p in parts), report


def sample_rows(labels: np.ndarray | None, num_rows: int, limit: int, seed: int) -> np.ndarray:
    """Positions of a seeded sample of ``limit`` of ``num_rows`` rows, in file order.

    Stratified when there are labels: each class keeps its share (largest remainders round), so an
    "iid" split of the sample stays iid. The first N rows would not: files are often sorted by class
    (the emoji set is), and ``train_limit`` then left most classes out.
    """
    rng = np.random.default_rng([seed, 0x5A3])  # its own stream: the partitioners draw from ``seed`` itself
    if labels is None:
        return np.sort(rng.choice(num_rows, limit, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * limit / num_rows
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: limit - take.sum()]:
        take[i] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))
