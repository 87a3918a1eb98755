"""Packaged fleet presets: ``fedray/devices/presets/<name>.yaml``, each a set of device classes with shares.

A preset file holds ``description`` (one line) and ``classes`` (the same keys as ``fleet.classes``); every number
in it names its public source in a comment or is labelled illustrative. The round rules (``policy``,
``deadline_s``, ``over_selection``) are not part of a preset: they are choices of the experiment.
"""

from __future__ import annotations

from importlib import resources

import yaml

from fedray.config.schema import ConfigError, DeviceClassConfig, fleet_preset_names

__all__ = ["fleet_preset", "fleet_preset_names"]


def fleet_preset(name: str) -> tuple[str, dict[str, DeviceClassConfig]]:
    """A packaged preset's description and device classes, validated like ``fleet.classes``."""
    from fedray.config.loader import build  # the strict loader: unknown keys and bad values name the key

    if name not in fleet_preset_names():
        raise ConfigError(f"config key 'fleet.preset': unknown fleet preset {name!r}; "
                          f"available: {', '.join(fleet_preset_names())}")
    raw = yaml.safe_load(resources.files("fedray.devices").joinpath(f"presets/{name}.yaml").read_text()) or {}
    unknown = sorted(set(raw) - {"description", "classes"})
    if unknown:
        raise ConfigError(f"fleet preset {name}: unknown key '{unknown[0]}'; expected description, classes")
    try:
        classes = build({"fleet": {"classes": raw.get("classes") or {}}}).fleet.classes
    except ConfigError as err:
        raise ConfigError(f"fleet preset {name}: {err}") from None
    if not classes:
        raise ConfigError(f"fleet preset {name}: no device classes")
    return str(raw.get("description", "")), classes
