"""Packing clients into hosts: largest shard first, balanced rows, results independent of the packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.api import run_experiment
from fedray.config import ConfigError
from fedray.packing import auto_clients_per_actor, pack_clients, resolve_clients_per_actor
from fedray.plan import plan_run


def test_largest_shard_first_to_the_lightest_host():
    hosts = pack_clients([5, 9, 3, 9, 1, 7], 2)
    # 9(c1)->h0, 9(c3)->h1, 7(c5)->h2, 5(c0)->h2 (lightest), 3(c2)->h0 (tie: lower index), 1(c4)->h1
    assert hosts == ((1, 2), (3, 4), (0, 5))
    assert pack_clients([4, 4, 4], 1) == ((0,), (1,), (2,))
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in rng.integers(10, 200, 1000)]
    hosts = pack_clients(sizes, 64)
    assert len(hosts) == 16 and all(len(h) <= 64 for h in hosts)
    assert sorted(c for h in hosts for c in h) == list(range(1000)) and all(list(h) == sorted(h) for h in hosts)
    rows = [sum(sizes[c] for c in h) for h in hosts]
    assert max(rows) - min(rows) <= max(sizes)  # greedy LPT: within one shard of balanced


def test_auto_from_population_and_resources():
    assert auto_clients_per_actor(1000, cpus=2) == 500
    assert auto_clients_per_actor(3, cpus=16) == 1  # small populations keep an actor per client
    assert auto_clients_per_actor(100, cpus=16, gpus=1, client_gpus=0.25) == 25  # 4 actors per GPU
    assert resolve_clients_per_actor(8, 3, cpus=2) == 3
    assert resolve_clients_per_actor("auto", 8, cpus=2.5) == 4


def test_plan_packs_hosts(tiny):
    plan = plan_run(tiny("data.num_clients=5", "runtime.clients_per_actor=2"))
    assert len(plan.hosts) == 3 and sorted(plan.host_of) == list(range(5))
    with pytest.raises(ConfigError, match="runtime.clients_per_actor"):
        tiny("runtime.clients_per_actor=0")
    with pytest.raises(ConfigError, match="runtime.clients_per_actor"):
        tiny("runtime.clients_per_actor=many")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_same_weights_whatever_the_packing(tiny, tmp_path, one_thread):
    base = ("runtime.backend=local", "runtime.torch_threads=1", "data.num_clients=4", "train.participation=0.75",
            "train.rounds=[2,2]")
    states = [run_experiment(tiny(*base, f"runtime.clients_per_actor={k}"), str(tmp_path / f"cpa{k}"),
                             progress=lambda _: None).state for k in (1, 4, 3)]
    for name in states[0]:
        for other in states[1:]:
            assert np.array_equal(states[0][name], other[name]), name
