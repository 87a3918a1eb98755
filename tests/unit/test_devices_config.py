"""The ``fleet`` config section and ``train.target``: presets that load and cite their numbers, strict bad input."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from fedray.config import ConfigError, dump_yaml, load_config
from fedray.config.loader import build
from fedray.config.schema import FleetConfig
from fedray.devices import build_devices, fleet_preset, fleet_preset_names

CLASS = {"memory_mib": 16, "gflops": 5, "downlink_mbps": 10, "uplink_mbps": 2}


def fleet(**classes):
    return build({"fleet": {"classes": classes}}).fleet


def test_no_fleet_section_means_no_devices_and_no_clock():
    cfg = load_config(preset="tiny")
    assert cfg.fleet == FleetConfig() and not cfg.fleet.enabled
    assert build_devices(cfg.fleet, cfg.data.num_clients, cfg.train.seed) is None


def test_presets_load_validate_and_cover_the_issue():
    names = fleet_preset_names()
    assert {"iot", "phones", "bandwidth-starved", "constrained"} <= set(names)
    for name in names:
        description, classes = fleet_preset(name)
        assert description and classes
        assert sum(c.share for c in classes.values()) == pytest.approx(1.0)
        cfg = load_config(preset="default", overrides=[f"fleet.preset={name}"])
        devices = build_devices(cfg.fleet, 40, cfg.train.seed)
        assert len(devices) == 40 and set(devices.device) <= set(classes)


@pytest.mark.parametrize("name", fleet_preset_names())
def test_every_number_in_a_preset_names_its_source_or_is_illustrative(name):
    text = resources.files("fedray.devices").joinpath(f"presets/{name}.yaml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    tags = set(re.findall(r"\[(\w+)\]", header))  # sources are defined in the header as [Tag] ...
    numbers = [line for line in text.splitlines()
               if re.match(r"\s+(memory_mib|gflops|downlink_mbps|uplink_mbps|availability|latency_s):", line)]
    assert numbers
    for line in numbers:
        comment = line.partition("#")[2]
        cited = [t for t in re.findall(r"\[(\w+)\]", comment)]
        assert "illustrative" in comment or (cited and set(cited) <= tags), f"{name}: no source for {line.strip()!r}"


def test_constrained_budgets_lie_between_lw_and_fedmml_peaks_of_the_default_preset():
    """The header's figures are what `fedray resources --preset default` printed; the budgets must straddle them."""
    _, classes = fleet_preset("constrained")
    lw_peak, fedmml_peak = 14.473, 25.01
    assert any(lw_peak < c.memory_mib < fedmml_peak for c in classes.values())
    assert any(c.memory_mib >= fedmml_peak for c in classes.values())


def test_dump_yaml_reads_back_to_an_equal_config(tmp_path):
    cfg = load_config(preset="tiny", overrides=["fleet.preset=phones", "fleet.deadline_s=600",
                                                "fleet.over_selection=0.3", "train.target={eval/i2t_r10: 0.15}"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(str(path)) == cfg


def test_a_fleet_given_inline_with_dotted_overrides():
    cfg = load_config(preset="tiny", overrides=[
        "fleet.classes={a: {share: 0.5, memory_mib: 8, gflops: 1, downlink_mbps: 1, uplink_mbps: 1},"
        " b: {share: 0.5, memory_mib: 64, gflops: 9, downlink_mbps: 9, uplink_mbps: 9, availability: 0.5}}",
        "fleet.policy=strict"])
    assert cfg.fleet.classes["b"].availability == 0.5 and cfg.fleet.policy == "strict"


@pytest.mark.parametrize(("raw", "message"), [
    ({"fleet": {"classes": {"a": {**CLASS, "share": 0.5}, "b": {**CLASS, "share": 0.4}}}},
     "config key 'fleet.classes': shares must sum to 1, got 0.9"),
    ({"fleet": {"classes": {"a": {**CLASS, "downlink_mbps": 0, "share": 1.0}}}},
     "config key 'fleet.classes.a.downlink_mbps': must be a positive finite number, got 0"),
    ({"fleet": {"classes": {"a": {**CLASS, "uplink_mbps": -1, "share": 1.0}}}},
     "config key 'fleet.classes.a.uplink_mbps': must be a positive finite number, got -1"),
    ({"fleet": {"classes": {"a": {**CLASS, "gflops": 0, "share": 1.0}}}},
     "config key 'fleet.classes.a.gflops': must be a positive finite number, got 0"),
    ({"fleet": {"classes": {"a": {**CLASS, "availability": 1.5, "share": 1.0}}}},
     "config key 'fleet.classes.a.availability': must be in [0, 1], got 1.5"),
    ({"fleet": {"classes": {"a": {**CLASS, "availability": -0.1, "share": 1.0}}}},
     "config key 'fleet.classes.a.availability': must be in [0, 1], got -0.1"),
    ({"fleet": {"classes": {"a": {**CLASS, "latency_s": -1, "share": 1.0}}}},
     "config key 'fleet.classes.a.latency_s': must be >= 0"),
    ({"fleet": {"classes": {"a": {**CLASS}}}}, "config key 'fleet.classes.a.share': required"),
    ({"fleet": {"classes": {"a": {"share": 1.0, "gflops": 1, "downlink_mbps": 1, "uplink_mbps": 1}}}},
     "config key 'fleet.classes.a.memory_mib': required"),
    ({"fleet": {"classes": {"a": {**CLASS, "share": 1.0, "ram": 4}}}},
     "config key 'fleet.classes.a.ram': unknown key; valid keys here:"),
    ({"fleet": {"presets": "phones"}}, "config key 'fleet.presets': unknown key; valid keys here:"),
    ({"fleet": {"preset": "nope"}}, "config key 'fleet.preset': unknown fleet preset 'nope'; available: bandwidth-starved"),
    ({"fleet": {"preset": "phones", "trace": "t.csv"}},
     "config key 'fleet.trace': give one of fleet.preset, fleet.classes or fleet.trace, not preset and trace"),
    ({"fleet": {"trace": "devices.json"}}, "config key 'fleet.trace': 'devices.json': expected a .csv or .parquet file"),
    ({"fleet": {"deadline_s": 30}}, "config key 'fleet.deadline_s': is set but no fleet is defined"),
    ({"fleet": {"preset": "phones", "deadline_s": 0}}, "config key 'fleet.deadline_s': must be a positive number"),
    ({"fleet": {"preset": "phones", "over_selection": -0.1}}, "config key 'fleet.over_selection': must be >= 0"),
    ({"fleet": {"preset": "phones", "policy": "drop"}}, "config key 'fleet.policy': unknown policy 'drop'"),
    ({"train": {"target": {"i2t_r10": 0.15}}}, "config key 'train.target.i2t_r10': targets name an evaluation metric"),
])
def test_bad_fleet_input_names_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        build(raw)
    assert message in str(err.value)
