"""Partitioners: split training row positions over clients. Pure numpy, seeded.

Every partitioner returns one sorted array of *positions* (into the training rows) per client;
the unit is the paired item, so a client's image, text and audio always stay aligned.
"""

from __future__ import annotations

import numpy as np

from fedray.config import ConfigError


def iid(num_rows: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """A seeded random permutation cut into ``num_clients`` near-equal contiguous shards."""
    if num_clients > num_rows:
        raise ConfigError(f"config key 'data.num_clients': {num_clients} clients but only {num_rows} training rows")
    perm = np.random.default_rng(seed).permutation(num_rows)
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def dirichlet(labels: np.ndarray, num_clients: int, beta: float, seed: int, min_size: int = 1,
              max_tries: int = 100) -> list[np.ndarray]:
    """Label skew: for each class c, p_c ~ Dir(β·1_N) and the shuffled rows of c are cut at cumsum(p_c)·n_c.

    Draws are redrawn (at most ``max_tries`` times, from one seeded stream) until every client holds at
    least ``min_size`` rows. Small β gives clients few classes; β ≥ 100 is close to IID.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if beta <= 0:
        raise ConfigError(f"config key 'data.partition.beta': must be > 0, got {beta}")
    if num_clients * min_size > n:
        raise ConfigError(f"config key 'data.num_clients': {num_clients} clients x min_size {min_size} "
                          f"needs {num_clients * min_size} training rows, but there are only {n}; "
                          "use fewer clients or a smaller data.partition.min_size / train.batch_size")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    smallest = 0
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            p = rng.dirichlet(np.full(num_clients, beta))
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        smallest = min(len(p) for p in out)
        if smallest >= min_size:
            return out
    raise ConfigError(f"config key 'data.partition.beta': after {max_tries} Dirichlet draws with beta={beta} over "
                      f"data.num_clients={num_clients}, some client always had fewer than min_size={min_size} rows "
                      f"(last draw's smallest: {smallest}); raise beta, use fewer clients, or lower "
                      "data.partition.min_size / train.batch_size")


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Cluster ids [N] of k-means (k-means++ init, Lloyd steps) over features ``x`` [N, D]; seeded."""
    x = np.asarray(x, dtype=np.float64)
    if k > len(x):
        raise ConfigError(f"config key 'data.partition.clusters': {k} clusters but only {len(x)} training rows")
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        pick = rng.choice(len(x), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(x))
        centers.append(x[pick])
        d2 = np.minimum(d2, ((x - x[pick]) ** 2).sum(1))
    c = np.stack(centers)
    assign = np.zeros(len(x), dtype=np.int64)
    for _ in range(iters):
        # ||x - c||^2 up to the per-row constant ||x||^2: [N, k]
        assign_new = np.argmin(-2 * x @ c.T + (c ** 2).sum(1), axis=1)
        if np.array_equal(assign_new, assign) and _ > 0:
            break
        assign = assign_new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return assign


def histograms(labels: np.ndarray | None, parts: list[np.ndarray], num_classes: int) -> list[list[int]]:
    """Per-client label counts (empty lists when the data has no labels)."""
    if labels is None:
        return [[] for _ in parts]
    return [np.bincount(labels[p], minlength=num_classes).tolist() for p in parts]


def entropy(hist: list[int]) -> float:
    """Shannon entropy (nats) of one label histogram; 0 for an empty one."""
    h = np.asarray(hist, dtype=np.float64)
    if h.sum() == 0:
        return 0.0
    p = h[h > 0] / h.sum()
    return float(-(p * np.log(p)).sum())
