"""Aggregation, loss and recall: small pure functions checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedray.model.losses import contrastive_loss, info_nce
from fedray.training import PartialSum, combine, nbytes, recall_at_k, weighted_mean


def test_weighted_mean_is_fedavg_by_sample_count():
    like = {"w": np.zeros(2, np.float32), "n": np.zeros((), np.int64)}
    total = PartialSum()
    total.add(1, {"w": np.array([1.0, 2.0], np.float32), "n": np.array(10)})
    total.add(3, {"w": np.array([5.0, 6.0], np.float32), "n": np.array(11)})
    out = weighted_mean(total, like)
    np.testing.assert_array_equal(out["w"], np.array([4.0, 5.0], np.float32))  # (1*1 + 3*5) / 4
    assert out["w"].dtype == np.float32 and out["n"].dtype == np.int64 and int(out["n"]) == 11  # 10.75 -> 11


def test_zero_dim_buffers_stay_arrays():
    """BatchNorm's num_batches_tracked is a 0-d tensor; a numpy scalar would not load back into torch."""
    total = PartialSum()
    total.add(2, {"n": np.array(3, np.int64), "m": np.array(1.0, np.float32)})
    out = weighted_mean(total, {"n": np.array(0, np.int64), "m": np.array(0.0, np.float32)})
    assert all(isinstance(v, np.ndarray) and v.shape == () for v in out.values()) and out["n"] == 3


def test_partial_sums_combine_to_the_same_total():
    rng = np.random.default_rng(0)
    states = [{"w": rng.standard_normal(5).astype(np.float32)} for _ in range(4)]
    flat = PartialSum()
    for i, s in enumerate(states):
        flat.add(i + 1, s)
    a, b = PartialSum(), PartialSum()
    a.add(1, states[0]); a.add(2, states[1]); b.add(3, states[2]); b.add(4, states[3])
    like = {"w": states[0]["w"]}
    np.testing.assert_array_equal(weighted_mean(combine([a, b]), like)["w"], weighted_mean(flat, like)["w"])


def test_empty_cohort_cannot_be_averaged():
    with pytest.raises(ValueError, match="no samples"):
        weighted_mean(PartialSum(), {"w": np.zeros(1, np.float32)})


def test_nbytes_is_exact():
    assert nbytes({"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.int64)}) == 3 * 4 * 4 + 5 * 8


def test_info_nce_matches_the_formula_and_pairs_average():
    torch.manual_seed(0)
    za, zb = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    logits = za @ zb.T / 0.05
    expected = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    assert torch.allclose(info_nce(za, zb, 0.05), expected)
    zc = F.normalize(torch.randn(4, 8), dim=-1)
    three = contrastive_loss({"image": za, "text": zb, "audio": zc}, 0.05)
    pairs = (info_nce(zc, za, 0.05) + info_nce(zc, zb, 0.05) + info_nce(za, zb, 0.05)) / 3
    assert torch.allclose(three, pairs)


def test_recall_at_k_counts_ranks_of_the_paired_item():
    q = torch.eye(3)
    g = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])  # query 1 and 2 find the other's item first
    r = recall_at_k(q, g, ks=(1, 2))
    # queries 1, 2: one item strictly closer, one tied at 0 -> rank 1 or 2 with equal chance: R@2 = 1/2 each
    assert r[1] == pytest.approx(1 / 3) and r[2] == pytest.approx((1 + 0.5 + 0.5) / 3)
