"""Towers initialised from a transformers checkpoint: the architecture comes from its config.

``model.towers.<m>.checkpoint`` is a local directory (``save_pretrained`` output), the name of a
tower vendored with fedray (``fedray/data/embedded/towers/<name>``) or, on a cluster with hub access, a hub id. Before anything is built, the loader reads the checkpoint's
``config.json`` and fills the tower's architecture keys from it; a key the YAML sets explicitly to a
different value is a :class:`ConfigError`, as is a checkpoint that cannot be found (which never
contacts a hub when ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

from typing import Any

from fedray.config.schema import ConfigError

# fedray TowerConfig key -> the config attribute per architecture (DistilBERT names its own).
_KEYS = {
    "hidden_size": {"distilbert": "dim"},
    "num_layers": {"distilbert": "n_layers", "*": "num_hidden_layers"},
    "num_heads": {"distilbert": "n_heads", "*": "num_attention_heads"},
    "intermediate_size": {"distilbert": "hidden_dim"},
}
_ARCH = {"bert": "bert", "distilbert": "distilbert", "vit": "vit", "audio-spectrogram-transformer": "ast"}


def read_hf_config(checkpoint: str, key: str = "checkpoint") -> Any:
    """The transformers config of ``checkpoint`` (local directory or hub id), or a ConfigError naming it."""
    from transformers import AutoConfig  # only configs with checkpoints pay for the import

    try:
        return AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as err:
        raise ConfigError(f"config key '{key}': cannot load checkpoint {checkpoint!r}: it is not a local directory "
                          f"with a config.json, nor a hub id available here (offline runs need a local "
                          f"directory or a cached download). ({type(err).__name__}: {str(err).splitlines()[0]})"
                          ) from None


def architecture(hf: Any, checkpoint: str, key: str) -> dict[str, Any]:
    """TowerConfig values taken from a checkpoint's config."""
    arch = _ARCH.get(hf.model_type)
    if arch is None:
        raise ConfigError(f"config key '{key}': checkpoint {checkpoint!r} is a {hf.model_type!r} model; "
                          f"fedray towers support {', '.join(sorted(_ARCH))}")
    out: dict[str, Any] = {"arch": arch}
    for name, attrs in _KEYS.items():
        out[name] = getattr(hf, attrs.get(arch, attrs.get("*", name)))
    if arch in ("vit", "ast"):
        out["patch_size"] = hf.patch_size
    if arch == "ast":
        if hf.frequency_stride != hf.time_stride:
            raise ConfigError(f"config key '{key}': checkpoint {checkpoint!r} has different frequency and time "
                              f"strides ({hf.frequency_stride}, {hf.time_stride}); fedray supports one patch stride")
        out["patch_stride"] = hf.frequency_stride
    return out


def embedded_tower(checkpoint: str) -> str:
    """The packaged directory of a vendored tower (``fedray/data/embedded/towers/<name>``) for its bare name;
    any other value (a path, a hub id) unchanged. A local directory of the same name wins."""
    from importlib import resources
    from pathlib import Path

    root = resources.files("fedray.data").joinpath("embedded", "towers", checkpoint)
    if "/" in checkpoint or Path(checkpoint).exists() or not root.joinpath("config.json").is_file():
        return checkpoint
    return str(root)


def resolve_checkpoints(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill each checkpoint tower's architecture keys in a raw config dict (a copy is returned)."""
    towers = raw["model"].get("towers") if isinstance(raw.get("model"), dict) else None
    if not isinstance(towers, dict):
        return raw
    out = {**raw, "model": {**raw["model"], "towers": dict(towers)}}
    for name, tower in towers.items():
        if not isinstance(tower, dict) or tower.get("checkpoint") is None:
            continue
        tower = {**tower, "checkpoint": embedded_tower(str(tower["checkpoint"]))}
        where = f"model.towers.{name}"
        values = architecture(read_hf_config(tower["checkpoint"], f"{where}.checkpoint"), tower["checkpoint"],
                              f"{where}.checkpoint")
        for k, v in values.items():
            if k in tower and tower[k] != v:
                raise ConfigError(f"config key '{where}.{k}': {tower[k]!r} conflicts with checkpoint "
                                  f"{tower['checkpoint']!r}, which has {v!r}; remove the key or match it")
        out["model"]["towers"][name] = {**tower, **values}
    return out
