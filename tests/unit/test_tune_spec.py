"""Sweep files are checked completely before Tune starts; trial sizing is plain arithmetic. No Ray."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from fedray.tune.metrics import RoundReporter, eval_metrics, reported_metrics
from fedray.tune.bundles import TrialResources, client_gpus, fit_concurrency, num_hosts, trial_bundles
from fedray.tune.spec import SweepError, load_sweep, parse_sweep, trial_config

CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"


def sweep(**over):
    data = {"name": "t", "base": {"preset": "tiny"}, "search_space": {"train.method": {"grid": ["lw", "prog"]}},
            "metric": "eval/i2t_r1", "mode": "max"}
    data.update(over)
    return parse_sweep(data, "t.yaml")


def test_shipped_sweeps_validate():
    for name in ("smoke", "beta_sweep", "allocation_sweep", "stages_sweep"):
        spec = load_sweep(str(CONFIGS / f"{name}.yaml"))
        assert spec.search_space, name
    stages = load_sweep(str(CONFIGS / "stages_sweep.yaml"))
    s1_lw = next(c for c in stages.checked if c.train.stages == 1 and c.train.method == "lw")
    from fedray.schedules import build_schedule

    (only,) = build_schedule(s1_lw)  # S = 1 with lw: the whole model present and trained at once
    assert only.frozen == frozenset() and only.depths == {"image": 4, "text": 2}


def test_unknown_search_key_names_it():
    with pytest.raises(SweepError, match=r"sweep t.yaml: search_space 'data.partition.bta' = 0.1: "
                                         r"config key 'data.partition.bta': unknown key"):
        sweep(search_space={"data.partition.bta": {"grid": [0.1, 1.0]}})


def test_invalid_value_names_key_and_value():
    with pytest.raises(SweepError, match=r"search_space 'data.partition.beta' = -1.*must be > 0"):
        sweep(search_space={"data.partition.beta": {"choice": [0.5, -1]}})


def test_unknown_distribution():
    with pytest.raises(SweepError, match=r"search_space 'train.lr.head': unknown distribution 'normal'; "
                                         r"expected one of grid, choice, uniform, loguniform, randint"):
        sweep(search_space={"train.lr.head": {"normal": [0.001, 0.1]}})


def test_empty_grid():
    with pytest.raises(SweepError, match=r"search_space 'train.method': empty grid"):
        sweep(search_space={"train.method": {"grid": []}})


def test_bad_ranges():
    with pytest.raises(SweepError, match=r"loguniform needs low > 0"):
        sweep(search_space={"train.lr.head": {"loguniform": [0, 0.1]}})
    with pytest.raises(SweepError, match=r"uniform needs low < high"):
        sweep(search_space={"train.participation": {"uniform": [1.0, 0.5]}})
    spec = sweep(search_space={"train.lr.head": {"loguniform": ["1e-4", "1e-2"]}})  # YAML 1.1 strings
    assert spec.search_space["train.lr.head"].args == (1e-4, 1e-2)


def test_metric_never_reported():
    with pytest.raises(SweepError, match=r"metric 'eval/accuracy' is never reported by the trainable.*"
                                         r"it reports: .*eval/i2t_r1"):
        sweep(metric="eval/accuracy")


def test_combination_checked_not_just_each_key():
    # Each value is valid alone on the base (rounds: uniform, stages: 2); stages=3 with [1, 1] is not.
    with pytest.raises(SweepError, match=r"search_space with train.stages=3, train.rounds=\[1, 1\]: "
                                         r"config key 'train.rounds': has 2 entries but train.stages is 3"):
        sweep(base={"preset": "tiny", "overrides": {"train.rounds": "uniform", "train.total_rounds": 2}},
              search_space={"train.stages": {"grid": [2, 3]}, "train.rounds": {"grid": ["uniform", [1, 1]]}})


def test_unknown_top_level_and_scheduler():
    with pytest.raises(SweepError, match=r"unknown key 'serach_space'"):
        sweep(serach_space={})
    with pytest.raises(SweepError, match=r"unknown scheduler 'hyperband'"):
        sweep(scheduler={"kind": "hyperband"})
    assert sweep(scheduler={"kind": "asha"}).scheduler.max_t == 2  # tiny: 2 rounds


def test_sets_route_to_sweep_or_base(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": {"preset": "default"}, "search_space": {"train.method": {"grid": ["lw"]}}}))
    spec = load_sweep(str(path), ["base.preset=tiny", "search_space.data.partition.beta={grid: [0.05, 5]}",
                                  "max_concurrent_trials=1", "train.local_epochs=3"])
    assert spec.name == "s" and spec.max_concurrent_trials == 1
    assert spec.search_space["data.partition.beta"].args == (0.05, 5)
    cfg = trial_config(spec.base, {"train.method": "prog", "data.partition.beta": 5})
    assert (cfg.name, cfg.train.method, cfg.data.partition.beta, cfg.train.local_epochs) == ("tiny", "prog", 5.0, 3)
    small = trial_config(spec.base, {"train.lr.head": 1e-05, "train.rounds": [1, 1], "train.method": "lw"})
    assert small.train.lr["head"] == 1e-05 and small.train.rounds == [1, 1]  # 1e-05 stays a number
    again = parse_sweep(yaml.safe_load(spec.to_yaml()), "saved")  # sweep.yaml round trip (used by --resume)
    assert again.base == spec.base and again.search_space == spec.search_space
    secret = load_sweep(str(path), ["data.storage.secret=hunter22", "data.storage.key=AKIA1"])
    assert secret.base["data"]["storage"]["secret"] == "hunter22"  # the trials get it ...
    assert "hunter22" not in secret.to_yaml() and "AKIA1" not in secret.to_yaml()  # ... sweep.yaml does not


def test_concurrency_lowered_with_warning():
    n, warning = fit_concurrency(4, {"CPU": 1.0}, {"CPU": 2.0})
    assert n == 2 and warning == ("max_concurrent_trials=4 but the cluster holds only 2 trial(s) of 1 CPU "
                                  "each at once; running 2 at a time")
    assert fit_concurrency(2, {"CPU": 1.0}, {"CPU": 2.0}) == (2, None)
    with pytest.raises(ValueError, match=r"one trial needs 2.5 CPU but the Ray cluster has 2 CPU"):
        fit_concurrency(1, {"CPU": 2.5}, {"CPU": 2.0})


def test_trial_bundles(tiny):
    cfg = tiny()
    res = TrialResources(trial_cpus=0.25, client_cpus=0.25)
    assert num_hosts(cfg, {"CPU": 2.0}) == 2
    assert trial_bundles(cfg, res, 2, 0.0) == [{"CPU": 0.25}] * 4  # trainable, server, 2 clients: 1 CPU
    assert client_gpus(res, {"CPU": 2.0}, 2, 2) == 0.0  # no GPUs: never ask for one (it would hang)
    assert client_gpus(res, {"CPU": 8.0, "GPU": 1.0}, 2, 2) == 0.25  # 2 trials x 2 clients share one GPU
    bundles = trial_bundles(cfg, res, 2, 0.25)  # server and clients: identical bundles (no mis-placement)
    assert bundles == [{"CPU": 0.25}] + [{"CPU": 0.25, "GPU": 0.25}] * 3
    assert trial_bundles(cfg, TrialResources(trial_cpus=0.1, client_cpus=0.1), 2, 0.0) == [{"CPU": 0.1}] * 4


def test_reporter_carries_eval_and_sums_ledger(tiny):
    cfg = tiny()
    rep = RoundReporter(cfg)
    first = rep({"round": 1, "stage": 1, "eval/i2t_r1": 0.5, "comm/total_bytes": 10, "res/flops": 4,
                 "res/total_flops": 4, "res/peak_memory_bytes": 7})
    second = rep({"round": 2, "stage": 2, "comm/total_bytes": 20, "res/flops": 6, "res/total_flops": 10,
                  "res/peak_memory_bytes": 5})
    assert second["eval/i2t_r1"] == 0.5 and math.isnan(second["eval/t2i_r5"])  # carried; never evaluated
    assert (first["resources/flops"], second["resources/flops"], second["resources/peak_memory_bytes"]) == (4, 10, 7)
    assert second["method"] == "lw" and second["beta"] == cfg.data.partition.beta
    assert set(second) - {"method", "partition", "beta", "stages"} <= reported_metrics(cfg)
    assert math.isnan(RoundReporter(cfg)({"round": 1})["resources/flops"])  # no ledger: not measured, not 0
    assert "eval/a2i_r1" in eval_metrics(tiny("data.source=avdigits", "model.towers.audio={arch: vit}",
                                              "train.lr.audio=0.001"))
