"""Aggregation strategies against hand-computed small cases, and their config keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.config import ConfigError, StrategyConfig, load_config
from fedray.config.schema import STRATEGIES
from fedray.training import FedAvg, PartialSum, make_aggregator, proximal_term

F32 = np.float32


def cohort(w_a, w_b, bn=(0.0, 4.0), n=(10, 11)) -> PartialSum:
    """Client a (1 sample) and client b (3 samples): parameter w, BatchNorm-like buffer bn, integer counter n."""
    total = PartialSum()
    total.add(1, {"w": np.array(w_a, F32), "bn": np.array([bn[0]], F32), "n": np.array(n[0])})
    total.add(3, {"w": np.array(w_b, F32), "bn": np.array([bn[1]], F32), "n": np.array(n[1])})
    return total


def globals_(w) -> dict[str, np.ndarray]:
    return {"w": np.array(w, F32), "bn": np.array([9.0], F32), "n": np.array(0)}


PARAMS = frozenset({"w"})  # bn and n are buffers: averaged as FedAvg does
ROUND = cohort([2.0, 2.0], [3.0, 4.0])  # mean of w: [2.75, 3.5]


def test_fedavg_is_the_weighted_mean():
    out, state = FedAvg().aggregate(ROUND, globals_([1.0, 2.0]), {})
    np.testing.assert_array_equal(out["w"], np.array([2.75, 3.5], F32))
    assert out["bn"][0] == 3.0 and int(out["n"]) == 11 and state == {}


def test_fedavgm_by_hand():
    agg = make_aggregator(StrategyConfig("fedavgm", server_lr=0.5, momentum=0.9), PARAMS)
    x1, s1 = agg.aggregate(ROUND, globals_([1.0, 2.0]), {})
    # delta = [1.75, 1.5]; m = delta; x = x + 0.5 m
    np.testing.assert_allclose(s1["m/w"], [1.75, 1.5])
    np.testing.assert_allclose(x1["w"], [1.875, 2.75])
    assert x1["bn"][0] == 3.0 and int(x1["n"]) == 11 and set(s1) == {"m/w"}  # buffers: FedAvg, no moments
    x2, s2 = agg.aggregate(ROUND, {**globals_([0, 0]), "w": x1["w"]}, s1)
    # delta = [0.875, 0.75]; m = 0.9 [1.75, 1.5] + delta = [2.45, 2.1]; x = x1 + 0.5 m
    np.testing.assert_allclose(s2["m/w"], [2.45, 2.1], rtol=1e-6)
    np.testing.assert_allclose(x2["w"], [3.1, 3.8], rtol=1e-6)


@pytest.mark.parametrize("kind", ["fedadam", "fedyogi"])
def test_adaptive_optimisers_by_hand(kind):
    agg = make_aggregator(StrategyConfig(kind, server_lr=0.1, beta1=0.9, beta2=0.99, tau=0.01), PARAMS)
    x1, s1 = agg.aggregate(ROUND, globals_([1.0, 2.0]), {})
    d1 = np.array([1.75, 1.5])
    m1, v1 = 0.1 * d1, 0.01 * d1**2  # from zero moments: Adam and Yogi agree on the first step
    np.testing.assert_allclose(s1["m/w"], m1, rtol=1e-6)
    np.testing.assert_allclose(s1["v/w"], v1, rtol=1e-6)
    np.testing.assert_allclose(x1["w"], [1 + 0.1 * 0.175 / 0.185, 2 + 0.1 * 0.15 / 0.16], rtol=1e-6)
    x2, s2 = agg.aggregate(ROUND, {**globals_([0, 0]), "w": x1["w"]}, s1)
    d2 = np.array([2.75, 3.5]) - x1["w"].astype(np.float64)
    m2 = 0.9 * s1["m/w"].astype(np.float64) + 0.1 * d2
    v = s1["v/w"].astype(np.float64)
    v2 = 0.99 * v + 0.01 * d2**2 if kind == "fedadam" else v - 0.01 * d2**2 * np.sign(v - d2**2)
    np.testing.assert_allclose(s2["v/w"], v2, rtol=1e-6)
    np.testing.assert_allclose(x2["w"], x1["w"] + 0.1 * m2 / (np.sqrt(v2) + 0.01), rtol=1e-6)
    if kind == "fedyogi":
        assert not np.allclose(v2, 0.99 * v + 0.01 * d2**2)  # the case really tells Yogi from Adam


def test_moments_start_at_zero_for_new_tensors_and_are_dropped_for_departed_ones():
    agg = make_aggregator(StrategyConfig("fedadam", server_lr=0.1, tau=0.01), PARAMS | {"u"})
    total = PartialSum()  # u: newly exchanged (its group just became trainable); both clients send 1.0
    total.add(1, {"w": np.array([2.0, 2.0], F32), "u": np.array([1.0], F32)})
    total.add(3, {"w": np.array([3.0, 4.0], F32), "u": np.array([1.0], F32)})
    stale = {"m/gone": np.ones(1, F32), "v/gone": np.ones(1, F32)}  # a tensor no longer exchanged
    out, state = agg.aggregate(total, {"w": np.array([1.0, 2.0], F32), "u": np.array([0.0], F32)}, stale)
    assert set(state) == {"m/w", "v/w", "m/u", "v/u"}
    np.testing.assert_allclose(state["m/u"], [0.1])  # (1 - beta1) * delta with delta = 1.0: a zero start
    np.testing.assert_allclose(state["v/u"], [0.01])
    np.testing.assert_allclose(out["u"], [0.1 * 0.1 / (0.1 + 0.01)], rtol=1e-6)


def test_fedprox_term_by_hand_and_its_gradient():
    w = torch.tensor([1.0, 3.0], requires_grad=True)
    anchor = [(w, torch.tensor([0.0, 1.0]))]
    term = proximal_term(anchor, mu=0.5)
    assert term.item() == pytest.approx(0.5 / 2 * (1 + 4))
    term.backward()
    assert torch.allclose(w.grad, torch.tensor([0.5, 1.0]))  # mu * (w - w_global)
    assert isinstance(make_aggregator(StrategyConfig("fedprox", mu=0.1), PARAMS), FedAvg)  # the server: FedAvg


def test_fedprox_pulls_local_training_towards_the_global_model(tiny):
    from fedray.plan import plan_run
    from fedray.client import ClientHost, RoundTask
    from fedray.schedules import build_schedule

    drift = {}
    for mu in (0.0, 1000.0):
        cfg = load_config(preset="tiny", overrides=[f"train.strategy={{name: fedprox, mu: {mu}}}",
                                                    "train.local_epochs=2", "data.num_clients=2"])
        plan = plan_run(cfg)
        host = ClientHost(cfg, plan.info, plan.host_rows(0), threads=1)
        spec = build_schedule(cfg)[0]
        host.model.set_depths(spec.depths)
        payload = {n: t.detach().numpy().copy() for n, t in host.model.state(spec.exchanged).items()}
        result = host.train(RoundTask(0, 0, spec, (0,)), payload)
        mean = {n: v / result.partial.weight for n, v in result.partial.sums.items()}
        drift[mu] = sum(float(np.square(mean[n] - payload[n]).sum()) for n in payload)
    assert 0 < drift[1000.0] < drift[0.0] / 10


def test_strategy_config_names_bad_keys_and_fills_defaults():
    cfg = load_config(preset="tiny", overrides=["train.strategy=fedyogi"])
    assert cfg.train.strategy == StrategyConfig("fedyogi", **STRATEGIES["fedyogi"])
    assert load_config(preset="tiny").train.strategy.name == "fedavg"
    for override, message in (
        ("train.strategy=sgd", "config key 'train.strategy': unknown strategy 'sgd'"),
        ("train.strategy={name: fedavgm, beta1: 0.5}", "config key 'train.strategy.beta1': fedavgm takes no beta1"),
        ("train.strategy={name: fedadam, tau: 0}", "config key 'train.strategy.tau': must be > 0"),
        ("train.strategy={name: fedavgm, momentum: 1.0}", "config key 'train.strategy.momentum': must be in \\[0, 1\\)"),
        ("train.strategy={name: fedprox, mu: -1}", "config key 'train.strategy.mu': must be >= 0"),
        ("train.strategy={name: fedadam, lr: 0.1}", "config key 'train.strategy.lr': unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(preset="tiny", overrides=[override])


def test_every_configurable_strategy_has_an_aggregator():
    for name, defaults in STRATEGIES.items():
        assert make_aggregator(StrategyConfig(name, **defaults), PARAMS) is not None
