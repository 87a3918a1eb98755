"""Honest metrics: ties never favour the pair, and non-finite values stop a run with a named error."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fedray.training.evaluate import recall_at_k
from fedray.training.finite import NonFiniteError, check_finite, check_tensors


@pytest.mark.parametrize("n", [4, 10, 381])
def test_recall_of_constant_embeddings_is_chance_not_one(n):
    z = torch.nn.functional.normalize(torch.ones(n, 8), dim=-1)  # a collapsed model: every item identical

    r = recall_at_k(z, z, ks=(1, 5, 10))

    for k in (1, 5, 10):
        assert r[k] == pytest.approx(min(k, n) / n)  # chance level K/N, not 1.0


def test_recall_ties_count_as_a_random_order_of_the_tied_items():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 identical: each pair ties with the other
    g = q.clone()

    r = recall_at_k(q, g, ks=(1, 2))

    # rows 0, 1: 0 strictly closer, 1 tie -> R@1 = 1/2, R@2 = 1; row 2: rank 0
    assert r[1] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert r[2] == pytest.approx(1.0)


def test_recall_without_ties_is_the_plain_rank_count():
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(50, 8, generator=gen), torch.randn(50, 8, generator=gen)  # continuous: no ties
    sim = q @ g.T
    rank = (sim > sim.diagonal()[:, None]).sum(1)

    r = recall_at_k(q, g, ks=(1, 5, 10))

    assert r == {k: pytest.approx((rank < k).float().mean().item()) for k in (1, 5, 10)}


def test_nan_embeddings_raise_instead_of_scoring_one():
    z = torch.ones(5, 4)
    z[2, 1] = float("nan")

    with pytest.raises(NonFiniteError, match=r"non-finite evaluation embeddings \(query\) \(1 of 20 values"):
        recall_at_k(z, torch.ones(5, 4))


def test_evaluate_names_the_tower_with_non_finite_embeddings(tiny):
    from fedray.data import load_rows, open_dataset
    from fedray.model import build_model
    from fedray.training import evaluate

    cfg = tiny()
    info = open_dataset("emoji")
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, 0)
    shard = load_rows(info, np.arange(8), max_length=16)
    with torch.no_grad():
        next(model.group_module("text.embed").parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteError, match=r"evaluation embeddings of the text tower \(held-out rows 0\.\.3\)"):
        evaluate(model, shard, batch_size=4)


def test_check_finite_names_what_and_where_and_located_adds_round_and_client():
    check_finite(1.5, "train/loss")
    with pytest.raises(NonFiniteError) as info:
        check_finite(torch.tensor(float("inf")), "train/loss", step=3)

    err = info.value.located(round=2, client=7, step=99)

    assert str(err) == ("non-finite train/loss (inf) in round 2, client 7, local step 3; lower the learning rates "
                        "(train.lr), or check the data for extreme values")
    assert isinstance(err, ValueError)  # the CLI exits 2


def test_check_tensors_names_the_first_bad_tensor_and_its_group():
    state = {"text.head.w": np.ones(3, np.float32), "image.block.0.w": np.array([1, np.nan, np.inf], np.float32),
             "steps": np.array([3])}

    with pytest.raises(NonFiniteError, match=r"update tensor 'image\.block\.0\.w' \(group image\.block\.0\) "
                                             r"\(2 of 3 values non-finite\) in round 4, client 1"):
        check_tensors(state, "update", lambda n: n.rsplit(".", 1)[0], round=4, client=1)
    check_tensors({"a": torch.zeros(2)}, "update")  # finite: no error


def test_non_finite_error_pickles_with_its_fields():  # it crosses Ray's process boundary
    err = NonFiniteError("train/loss", "nan", round=3, client=2)

    back = pickle.loads(pickle.dumps(err))

    assert (back.what, back.round, back.client, str(back)) == ("train/loss", 3, 2, str(err))


def test_local_training_with_a_nan_input_stops_with_a_named_error(tiny):
    from fedray.data import load_rows, open_dataset
    from fedray.model import build_model
    from fedray.schedules import build_schedule
    from fedray.training import configure_trainable, local_train

    cfg = tiny("train.batch_size=4")
    info = open_dataset("emoji")
    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, 0)
    spec = build_schedule(cfg)[0]
    model.set_depths(spec.depths)
    configure_trainable(model, spec)
    shard = load_rows(info, np.arange(8), max_length=16)
    with torch.no_grad():
        next(model.group_module("image.embed").parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteError, match=r"non-finite train/loss \(nan\) in local step 1"):
        local_train(model, shard, spec, cfg.train, seed=0)
