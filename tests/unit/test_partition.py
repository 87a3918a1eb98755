"""Partitioning: Dirichlet label skew, k-means pseudo-labels, and the report in the run plan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedray.config import ConfigError
from fedray.data.partition import dirichlet, entropy, histograms, iid, kmeans


def _labels(n: int = 1000, classes: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, n)


def test_dirichlet_same_seed_same_split_other_seed_differs():
    labels = _labels()
    a = dirichlet(labels, 8, 0.5, seed=3, min_size=10)
    b = dirichlet(labels, 8, 0.5, seed=3, min_size=10)
    c = dirichlet(labels, 8, 0.5, seed=4, min_size=10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("beta", [0.1, 1.0, 100.0])
def test_dirichlet_every_row_in_exactly_one_client(beta):
    labels = _labels()
    parts = dirichlet(labels, 10, beta, seed=1, min_size=5)
    allrows = np.concatenate(parts)
    assert len(allrows) == len(labels)
    assert np.array_equal(np.sort(allrows), np.arange(len(labels)))


def test_dirichlet_meets_min_size_by_redrawing():
    labels = _labels()
    parts = dirichlet(labels, 10, 0.3, seed=0, min_size=40)
    assert min(len(p) for p in parts) >= 40


def test_dirichlet_min_size_impossible_names_the_settings():
    labels = _labels()
    with pytest.raises(ConfigError, match=r"beta=0\.01.*num_clients=20.*min_size=45"):
        dirichlet(labels, 20, 0.01, seed=0, min_size=45, max_tries=20)
    with pytest.raises(ConfigError, match=r"data\.num_clients.*2000 training rows"):
        dirichlet(labels, 40, 1.0, seed=0, min_size=50)


def test_dirichlet_rejects_nonpositive_beta():
    with pytest.raises(ConfigError, match="data.partition.beta"):
        dirichlet(_labels(), 4, 0.0, seed=0)


def test_skew_grows_as_beta_falls():
    labels = _labels(2000)
    mean_entropy = {}
    for beta in (100.0, 1.0, 0.1):
        parts = dirichlet(labels, 10, beta, seed=0, min_size=1)
        mean_entropy[beta] = np.mean([entropy(h) for h in histograms(labels, parts, 10)])
    assert mean_entropy[100.0] > mean_entropy[1.0] > mean_entropy[0.1]
    assert mean_entropy[100.0] > 0.95 * np.log(10)  # close to uniform
    assert mean_entropy[0.1] < 0.5 * np.log(10)  # one or two classes per client


def test_iid_more_clients_than_rows_is_an_error():
    with pytest.raises(ConfigError, match="data.num_clients.*5 clients but only 3"):
        iid(3, 5, seed=0)


def test_kmeans_recovers_separated_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = rng.integers(0, 3, 300)
    x = centers[truth] + rng.normal(0, 0.5, (300, 2))
    ids = kmeans(x, 3, seed=1)
    # the same partition up to cluster renaming: each true cluster maps to one id
    assert all(len(set(ids[truth == t])) == 1 for t in range(3))
    assert np.array_equal(ids, kmeans(x, 3, seed=1))


def test_plan_carries_dirichlet_sizes_and_histograms(tiny, tmp_path):
    from fedray.plan import plan_run

    cfg = tiny("data.partition.kind=dirichlet", "data.partition.beta=0.5", "data.num_clients=3",
               "data.train_limit=null", "train.batch_size=16")
    plan = plan_run(cfg)
    report = plan.partition
    assert report["kind"] == "dirichlet" and report["num_classes"] == 9
    sizes = [c["size"] for c in report["clients"]]
    assert sizes == [len(r) for r in plan.client_rows] and min(sizes) >= 16
    assert [sum(c["label_histogram"]) for c in report["clients"]] == sizes
    assert sum(sizes) == len(np.unique(np.concatenate(plan.client_rows)))


def test_kmeans_pseudo_labels_partition_unlabelled_rows(tiny):
    from fedray.plan import plan_run

    cfg = tiny("data.partition.kind=dirichlet", "data.partition.label_column=kmeans", "data.partition.clusters=4",
               "data.partition.beta=0.3", "train.batch_size=8")
    plan = plan_run(cfg)
    assert plan.partition["num_classes"] == 4
    assert plan.partition["label_column"] == "kmeans"
    assert plan_run(cfg).partition == plan.partition  # seeded end to end
    json.dumps(plan.partition)


def test_dirichlet_without_labels_column_is_an_error(tiny):
    from fedray.plan import plan_run

    with pytest.raises(ConfigError, match="label_column.*'category'"):
        plan_run(tiny("data.partition.kind=dirichlet", "data.partition.label_column=category"))


def test_train_limit_takes_a_seeded_sample_stratified_by_label():
    from fedray.data.assign import sample_rows

    labels = np.repeat(np.arange(4), [400, 300, 200, 100])  # sorted by class, like the emoji file

    keep = sample_rows(labels, len(labels), 100, seed=3)

    assert len(keep) == len(set(keep)) == 100 and np.all(np.diff(keep) > 0)  # distinct, in file order
    assert np.bincount(labels[keep]).tolist() == [40, 30, 20, 10]  # every class keeps its share
    assert np.array_equal(keep, sample_rows(labels, len(labels), 100, seed=3))
    assert not np.array_equal(keep, sample_rows(labels, len(labels), 100, seed=4))
    plain = sample_rows(None, 1000, 10, seed=3)  # no labels: a plain seeded sample
    assert len(set(plain)) == 10 and plain.max() < 1000


def test_the_tiny_presets_iid_clients_see_every_class(tiny):
    from fedray.plan import plan_run

    plan = plan_run(tiny())  # train_limit 256 of the emoji set, whose rows are sorted by category

    for client in plan.partition["clients"]:
        assert all(count > 0 for count in client["label_histogram"]), client
