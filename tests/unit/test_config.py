"""Config loading: strict keys and types, named errors for every invalid value."""

from __future__ import annotations

import pytest

from fedray.config import ConfigError, dump_yaml, load_config, preset_names
from fedray.plan import plan_run


def test_presets_load_and_round_trip(tmp_path):
    for name in preset_names():
        cfg = load_config(preset=name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(dump_yaml(cfg))
        assert load_config(str(path)) == cfg


def test_file_extends_preset_and_overrides_apply(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: tiny\ntrain:\n  method: prog\n")
    cfg = load_config(str(path), overrides=["train.rounds=[2, 3]", "model.towers.image.num_layers=4"])
    assert cfg.train.method == "prog"
    assert cfg.train.rounds == [2, 3]
    assert cfg.model.towers["image"].num_layers == 4
    assert cfg.data.source == "emoji"  # from the preset


@pytest.mark.parametrize("override, key", [
    ("train.methd=lw", "train.methd"),  # unknown key
    ("train.batch_size=big", "train.batch_size"),  # wrong type
    ("train.batch_size=1.5", "train.batch_size"),
    ("model.towers.image.num_layers=true", "model.towers.image.num_layers"),
    ("model.towers.image.blocks_per_stage=2", "model.towers.image.blocks_per_stage"),  # 2 stages x 2 > 2 blocks
    ("train.rounds=[1, 1, 1]", "train.rounds"),  # length differs from stages
    ("train.rounds=sometimes", "train.rounds"),
    ("train.participation=0", "train.participation"),
    ("train.participation=1.5", "train.participation"),
    ("train.lr.image=-0.1", "train.lr.image"),  # negative rate
    ("train.lr.audio=0.1", "train.lr.audio"),  # not a group of this model
    ("train.method=sgd", "train.method"),
    ("data.partition.beta=0", "data.partition.beta"),
    ("model.towers.image.arch=resnet", "model.towers.image.arch"),
    ("model.towers.text.arch=vit", "model.towers.text.arch"),
    ("runtime.backend=spark", "runtime.backend"),
    ("model.head.kind=linear", "model.head.kind"),
])
def test_invalid_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        load_config(preset="tiny", overrides=[override])


def test_short_override_keys_resolve_to_a_unique_field():
    cfg = load_config(preset="tiny", overrides=["method=prog", "beta=0.3", "participation=0.5"])
    assert (cfg.train.method, cfg.data.partition.beta, cfg.train.participation) == ("prog", 0.3, 0.5)
    with pytest.raises(ConfigError, match="ambiguous.*model.towers.<name>.hidden_size, model.head.hidden_size"):
        load_config(preset="tiny", overrides=["hidden_size=8"])
    with pytest.raises(ConfigError, match="config key 'metod': unknown key"):
        load_config(preset="tiny", overrides=["metod=lw"])


def test_unknown_preset_and_bad_override_syntax():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available: .*tiny"):
        load_config(preset="nope")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(preset="tiny", overrides=["train.method"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_batch_larger_than_smallest_shard_is_rejected_before_compute():
    cfg = load_config(preset="tiny", overrides=["data.num_clients=16", "train.batch_size=32"])  # 256 rows / 16 = 16
    with pytest.raises(ConfigError, match=r"train.batch_size.*larger than client \d+'s shard \(16 rows\)"):
        plan_run(cfg)


def test_more_clients_than_rows_is_rejected():
    cfg = load_config(preset="tiny", overrides=["data.num_clients=300"])
    with pytest.raises(ValueError, match="300 clients but only 256 training rows"):
        plan_run(cfg)


def test_total_rounds_is_never_silently_ignored():
    """A rounds list fixes the rounds itself: a different train.total_rounds next to it is a named error."""
    with pytest.raises(ConfigError, match=r"config key 'train.total_rounds': 8 is not used when train.rounds is a "
                                          r"list \(\[1, 1\] runs 2 rounds\)"):
        load_config(preset="tiny", overrides=["train.total_rounds=8"])
    assert load_config(preset="tiny", overrides=["train.total_rounds=2"]).train.rounds == [1, 1]  # consistent
    with pytest.raises(ConfigError, match=r"config key 'train.total_rounds': train.rounds=uniform splits it"):
        load_config(preset="tiny", overrides=["train.rounds=uniform"])
    cfg = load_config(preset="default", overrides=["train.rounds=[2, 4]", "train.total_rounds=null"])
    assert cfg.train.rounds == [2, 4] and cfg.train.total_rounds is None


def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: tiny\ntrain:\n  lr: {image: 1e-3, text: 2.5E-3, head: 1.0e-2}\n  participation: 1e-9\n")

    cfg = load_config(str(path), overrides=["train.lr.head=1e-3", "data.partition.beta=1e-300",
                                            "runtime.cache_budget_mb=5e2"])

    assert cfg.train.lr == {"image": 1e-3, "text": 2.5e-3, "head": 1e-3}
    assert (cfg.train.participation, cfg.data.partition.beta, cfg.runtime.cache_budget_mb) == (1e-9, 1e-300, 500.0)
    assert load_config(preset="tiny", overrides=["name=1e3x"]).name == "1e3x"  # not a number: stays a string


def test_an_empty_config_file_is_an_error_not_the_dataclass_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=f"config file {path}: is empty"):
        load_config(str(path))


def test_a_key_given_twice_is_an_error_anywhere(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("preset: tiny\ndata:\n  num_clients: 2\n  partition: {kind: iid, kind: dirichlet}\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: duplicate key 'kind' on lines 4 and 4"):
        load_config(str(path))
    with pytest.raises(ConfigError, match=r"override 'train.rounds=\{a: 1, a: 2\}': duplicate key 'a'"):
        load_config(preset="tiny", overrides=["train.rounds={a: 1, a: 2}"])


@pytest.mark.parametrize("override", ["model.temperature=.inf", "model.temperature=.nan", "runtime.round_timeout=.inf",
                                      "data.partition.beta=.inf", "runtime.client_cpus=1e400", "train.lr.head=.nan"])
def test_non_finite_numbers_are_rejected_with_their_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        load_config(preset="tiny", overrides=[override])


@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**64), str(10**30)])
def test_seed_out_of_range_names_the_key(seed):
    with pytest.raises(ConfigError, match=rf"config key 'train.seed': must be an integer in \[0, 2\*\*63\), got {seed}"):
        load_config(preset="tiny", overrides=[f"train.seed={seed}"])
    assert load_config(preset="tiny", overrides=[f"train.seed={2**63 - 1}"]).train.seed == 2**63 - 1


def test_a_rounds_list_over_a_preset_replaces_its_total_but_not_one_written_beside_it(tmp_path):
    cfg = load_config(preset="default", overrides=["train.rounds=[2, 4]"])  # default: skewed of total_rounds
    assert cfg.train.rounds == [2, 4] and cfg.train.total_rounds is None
    (tmp_path / "x.yaml").write_text("preset: default\ntrain: {rounds: [1, 2]}\n")
    assert load_config(str(tmp_path / "x.yaml")).train.total_rounds is None
    with pytest.raises(ConfigError, match="'train.total_rounds': 9 is not used"):
        load_config(preset="default", overrides=["train.rounds=[2, 4]", "train.total_rounds=9"])
