"""Export trained towers: one directory per tower that its own library loads back.

``transformers`` families: ``save_pretrained`` of the model object the tower's modules belong to
(so it holds the trained weights), truncated to the tower's present depth, plus ``tokenizer.json``
for a text tower. ``AutoModel.from_pretrained(dir)`` loads it; ``fedray_tower.json`` says how to
read the tower's feature from its outputs (:func:`feature`) and which input transform it expects.
EfficientNet-Lite0: the package's state dict (``efficientnet_lite0.pth``, the package's key names),
loadable with ``EfficientNet.from_name("efficientnet-lite0", image_size=...)`` + ``load_state_dict``.
Either kind of directory also works as ``model.towers.<m>.checkpoint`` of a later fedray run.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from fedray.config import ConfigError, ExperimentConfig
from fedray.config.checkpoint import CNN_WEIGHTS
from fedray.model.encoders.hf import quiet_progress
from fedray.model.multimodal import MultimodalModel, build_model
from fedray.model.towers import Tower

TOWER_FILE = "fedray_tower.json"
_NORM_OUTSIDE = {"clip_vision": "post_layernorm"}  # final norms transformers applies to the pooled token only


def export_towers(model: MultimodalModel, out_dir: str | Path, tokenizer: str | None = None,
                  storage: Any = None) -> list[Path]:
    """Write every tower of ``model`` to ``out_dir/<modality>``; returns the directories.

    ``out_dir`` must be absent or empty (an earlier export is never overwritten). ``tokenizer`` is the
    ``tokenizer.json`` the text tower was trained with (``DatasetInfo.tokenizer``), copied beside it.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"export directory {out}: exists and is not empty; fedray never overwrites an export")
    paths = []
    for name, tower in model.towers.items():
        path = out / name
        path.mkdir(parents=True)
        if tower.arch == "efficientnet_lite0":
            torch.save(tower.source.state_dict(), path / CNN_WEIGHTS)
        else:
            with _present_blocks_only(tower), quiet_progress():
                tower.source.save_pretrained(path)
            if tower.reader.startswith("tokens") and tokenizer is not None:
                _copy_tokenizer(tokenizer, path / "tokenizer.json", storage)
        (path / TOWER_FILE).write_text(json.dumps(_meta(tower), indent=2) + "\n")
        paths.append(path)
    return paths


def export_run(cfg: ExperimentConfig, info: Any, state: Mapping[str, np.ndarray | torch.Tensor],
               out_dir: str | Path) -> list[Path]:
    """Export the towers of a finished run: the model rebuilt from ``cfg``, loaded with ``state`` (the run's
    final state dict), at the depths of the schedule's last stage; ``info`` is the run's DatasetInfo."""
    from fedray.schedules import build_schedule

    model = build_model(cfg.model, {m: info.inputs for m in cfg.model.towers}, cfg.train.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays (a run's state from Ray): only read here
        model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
    model.set_depths(build_schedule(cfg)[-1].depths)
    return export_towers(model, out_dir, info.tokenizer, cfg.data.storage)


def feature(hf_model: torch.nn.Module, meta: dict[str, Any], last_hidden_state: torch.Tensor,
            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """fedray's tower feature from an exported model's ``last_hidden_state`` (``meta``: its fedray_tower.json)."""
    h = last_hidden_state
    if meta["norm_outside"]:
        h = getattr(hf_model, meta["norm_outside"])(h)
    if meta["pooling"] == "first":
        return h[:, 0]
    if meta["pooling"] == "last":
        return h[:, -1] if attention_mask is None else h[torch.arange(len(h)), attention_mask.sum(1) - 1]
    if attention_mask is None:
        return h.mean(1)
    keep = attention_mask.unsqueeze(-1).to(h.dtype)
    return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def _meta(tower: Tower) -> dict[str, Any]:
    return {"arch": tower.arch, "modality": tower.modality, "depth": tower.depth, "hidden_size": tower.hidden_size,
            "pooling": tower.pooling, "norm_outside": _NORM_OUTSIDE.get(tower.arch),
            "image_transform": asdict(tower.transform) if tower.transform is not None else None}


def _copy_tokenizer(source: str, dest: Path, storage: Any) -> None:
    """The dataset's tokenizer.json beside the tower: a local file, or ``s3://`` read with ``data.storage``."""
    from fedray.data import storage as st

    if st.is_s3(source):
        dest.write_bytes(st.filesystem(storage).cat_file(st.strip(source)))
    else:
        shutil.copyfile(source, dest)


@contextmanager
def _present_blocks_only(tower: Tower) -> Iterator[None]:
    """Blocks beyond the present depth (never trained) are left out of the saved model, then restored."""
    config = tower.source.config
    key = "n_layers" if hasattr(config, "n_layers") else "num_hidden_layers"
    full, removed = getattr(config, key), list(tower.blocks[tower.depth:])
    del tower.blocks[tower.depth:]
    setattr(config, key, tower.depth)
    try:
        yield
    finally:
        tower.blocks.extend(removed)
        setattr(config, key, full)
