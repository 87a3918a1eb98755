"""Frozen-prefix activation cache: same weights with and without it, validity rules, invalidation."""

from __future__ import annotations

import pytest
import torch

from fedray.client import ClientHost, FrozenValues
from fedray.client.prefix_cache import PrefixCache, cache_enabled
from fedray.config import ConfigError
from fedray.plan import plan_run
from fedray.schedules import build_schedule
from fedray.server import Finished, InProcessFleet, build_server, run_rounds

# 3 lw stages over 2-block towers: stage 2 caches embed+block.0, stage 3 extends the cache by block.1
# and leaves the text tower (BERT: no final norm) with only its head to train.
DETERMINISTIC = ("train.stages=3", "train.rounds=[1,2,2]", "data.num_clients=3", "model.head.dropout=0.1",
                 "model.towers.image.dropout=0.1")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_in_process(cfg) -> tuple[dict, list[ClientHost]]:
    plan = plan_run(cfg)
    hosts = [ClientHost(cfg, plan.info, plan.host_rows(h), threads=1) for h in range(len(plan.hosts))]
    ctx, evaluate, state = build_server(plan)
    (end,) = [e for e in run_rounds(state, ctx, InProcessFleet(hosts), evaluate, 0) if isinstance(e, Finished)]
    return end.outcome.state.tensors, hosts


def test_cache_gives_identical_weights(tiny, one_thread):
    off, off_hosts = run_in_process(tiny(*DETERMINISTIC, "runtime.cache_prefix=off"))
    on, on_hosts = run_in_process(tiny(*DETERMINISTIC, "runtime.cache_prefix=on"))
    tight, tight_hosts = run_in_process(tiny(*DETERMINISTIC, "runtime.cache_prefix=on", "runtime.cache_budget_mb=0"))
    assert all(h.cache is None for h in off_hosts)
    caches = [h.cache for h in on_hosts]
    assert sum(c.fills for c in caches) == 3 and sum(c.hits for c in caches) == 9  # 3 clients x (1 fill + 3 hits)
    assert all(set(c.entries[cl]) == {"image", "text"} and c.entries[cl]["image"].start == 2
               for c in caches for cl in c.entries)  # extended to the stage-3 prefix
    assert sum(h.cache.skips for h in tight_hosts) == 12 and all(h.cache.nbytes == 0 for h in tight_hosts)
    for name in off:
        assert torch.equal(torch.from_numpy(on[name]), torch.from_numpy(off[name])), name
        assert torch.equal(torch.from_numpy(tight[name]), torch.from_numpy(off[name])), name
    assert any(not torch.equal(torch.from_numpy(off[n]), torch.from_numpy(run_in_process(
        tiny(*DETERMINISTIC[:3], "runtime.cache_prefix=off", "train.seed=7"))[0][n])) for n in off)  # not vacuous


def test_loading_frozen_values_drops_only_entries_built_on_changed_groups(tiny, one_thread):
    cfg = tiny("runtime.cache_prefix=on", "data.num_clients=2")
    plan = plan_run(cfg)
    host = ClientHost(cfg, plan.info, plan.host_rows(0), threads=1)
    spec = build_schedule(cfg)[1]
    host.model.set_depths(spec.depths)
    from fedray.training import configure_trainable

    configure_trainable(host.model, spec)
    entry = host.cache.prepare(0, host.model, host.shards[0], spec)
    assert entry["image"].start == 1 and entry["text"].start == 1
    assert entry["text"].mask is not None and entry["image"].mask is None  # the text mask travels with the cache
    assert len(entry["image"].hidden) == len(host.shards[0])
    size = host.cache.nbytes

    def new_values(stage, groups, delta):  # the values a host would be sent at a stage change
        return FrozenValues(stage, {n: t.numpy() + delta for n, t in host.model.state(groups).items()})

    host.hold_frozen(new_values(5, {"image.embed", "text.block.0"}, 0.0))  # values it already holds: kept
    assert host.cache.nbytes == size and host.frozen_loads == 1
    host.hold_frozen(new_values(6, {"image.block.1"}, 1.0))  # changed, but not in the prefix
    assert host.cache.nbytes == size and set(host.cache.entries[0]) == {"image", "text"}
    host.hold_frozen(new_values(7, {"text.block.0"}, 1.0))
    assert set(host.cache.entries[0]) == {"image"} and host.cache.nbytes < size
    host.hold_frozen(new_values(7, {"image.embed"}, 1.0))  # a stage it holds already: not loaded again
    assert set(host.cache.entries[0]) == {"image"} and host.frozen_loads == 3
    host.cache.invalidate({"image.embed"})
    assert host.cache.entries == {} and host.cache.nbytes == 0
    assert host.cache.prepare(0, host.model, host.shards[0], build_schedule(cfg)[0]) is None  # stage 1: embed trains


def test_cache_validity_rules(tiny):
    assert cache_enabled(tiny())  # lw, 2 stages, no augmentation
    assert not cache_enabled(tiny("train.method=prog"))
    assert not cache_enabled(tiny("train.method=fedmml"))
    assert not cache_enabled(tiny("data.augment=true"))
    assert not cache_enabled(tiny("runtime.cache_prefix=off"))
    assert cache_enabled(tiny("runtime.cache_prefix=on", "model.towers.image.dropout=0.2"))  # frozen = eval mode
    for bad, why in (("train.method=prog", "needs lw"), ("data.augment=true", "augmentation"),
                     ("train.stages=1", "freezes nothing")):
        with pytest.raises(ConfigError, match=f"runtime.cache_prefix.*{why}"):
            tiny("runtime.cache_prefix=on", bad, *(["train.rounds=[2]"] if "stages" in bad else []))
    with pytest.raises(ConfigError, match="runtime.cache_prefix.*unknown mode"):
        tiny("runtime.cache_prefix=always")
    with pytest.raises(ConfigError, match="runtime.cache_budget_mb"):
        tiny("runtime.cache_budget_mb=-1")


def test_budget_admits_what_fits(tiny, one_thread):
    cfg = tiny("runtime.cache_prefix=on", "data.num_clients=4")
    plan = plan_run(cfg)
    spec = build_schedule(cfg)[1]
    host = ClientHost(cfg, plan.info, {c: plan.client_rows[c] for c in range(4)}, threads=1)
    host.model.set_depths(spec.depths)
    one = PrefixCache(1024)
    one.prepare(0, host.model, host.shards[0], spec)
    per_client = one.nbytes
    host.cache = PrefixCache(2.5 * per_client / 2**20)  # room for two clients' entries
    got = [host.cache.prepare(c, host.model, host.shards[c], spec) is not None for c in range(4)]
    assert got == [True, True, False, False] and host.cache.skips == 2
    assert host.cache.nbytes == 2 * per_client <= host.cache.budget
