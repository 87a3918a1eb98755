"""Checkpoint and model files of a run directory (local or s3://). No Ray.

A checkpoint is the server's state (:class:`~fedray.server.state.ServerState`, serialized by ``state.to_dict``)
plus the config as in config.yaml, the metrics rows so far, and the fingerprint of the data the run reads
(``fedray.data.fingerprint``: ``--resume`` refuses data that changed since). It holds only tensors and plain Python values, so
it loads with ``torch.load(weights_only=True)``: opening a checkpoint never runs code from the file. The final
model is ``model.safetensors``: the global tensors by name.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as safetensors_bytes

from fedray.config import ConfigError
from fedray.config.schema import StorageConfig
from fedray.data import storage as st
from fedray.server.state import ServerState, from_dict, to_dict

CHECKPOINT = "checkpoint.pt"
MODEL = "model.safetensors"
FORMAT = 2  # 1: the orchestrator's export_state (before the server state became one value)
# Keys that may change on --resume: where and how the run executes, not what it computes.
RESUMABLE_PREFIXES = ("runtime.",)


@dataclass(frozen=True)
class Saved:
    """A checkpoint as read back."""

    config: dict[str, Any]  # as written to config.yaml (credentials removed)
    rows: list[dict[str, Any]]  # metrics.jsonl up to the checkpoint
    state: ServerState
    data: dict[str, Any] | None = None  # fedray.data.fingerprint.fingerprint of the run's data (None: not recorded)


def dumps(config: dict[str, Any], rows: list[dict[str, Any]], state: ServerState,
          data: dict[str, Any] | None = None) -> bytes:
    """A checkpoint as bytes for the run directory's atomic ``write_bytes``; ``data``: the data's fingerprint."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": config, "rows": rows, "state": to_dict(state), "data": data}, buf)
    return buf.getvalue()


def model_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """The global tensors as safetensors (loadable with ``safetensors.numpy.load_file`` or ``safetensors.torch``)."""
    return safetensors_bytes({n: np.ascontiguousarray(v) for n, v in tensors.items()}, metadata={"format": "pt"})


def load(run_dir: str, storage: StorageConfig | None = None) -> Saved:
    """Read ``RUN_DIR/checkpoint.pt`` (a local directory or an s3:// prefix); errors say what is wrong with it."""
    if st.is_s3(run_dir):
        fs = st.filesystem(storage)
        root = st.strip(run_dir.rstrip("/"))
        try:
            names = {p.rsplit("/", 1)[-1] for p in fs.find(root)}
        except Exception as err:  # noqa: BLE001 - explain() names bucket and endpoint, never credentials
            raise st.explain(run_dir, err, storage, what="--resume") from None
        exists, read = bool(names), (lambda name: fs.cat_file(f"{root}/{name}"))
    else:
        path = Path(run_dir)
        names = {p.name for p in path.iterdir()} if path.is_dir() else set()
        exists, read = path.is_dir(), (lambda name: (path / name).read_bytes())
    if not exists:
        raise ConfigError(f"--resume {run_dir}: no such run directory")
    if "summary.json" in names:
        raise ConfigError(f"--resume {run_dir}: the run already finished (summary.json exists); nothing to resume")
    if CHECKPOINT not in names:
        raise ConfigError(f"--resume {run_dir}: no {CHECKPOINT} in it (the run stopped before its first "
                          "checkpoint, or runtime.checkpoint_every was 0); start a new run instead")
    try:
        data = torch.load(io.BytesIO(read(CHECKPOINT)), map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign or damaged file: say so instead of a pickle traceback
        raise ConfigError(f"--resume {run_dir}: {CHECKPOINT} is not a readable fedray checkpoint "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ConfigError(f"--resume {run_dir}: {CHECKPOINT} is not a fedray checkpoint of format {FORMAT}"
                          + (f" (it has format {found}, from an older fedray)" if isinstance(found, int) else ""))
    return Saved(data["config"], list(data["rows"]), from_dict(data["state"]), data.get("data"))


def config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, ignoring keys that may change on resume."""
    a, b = _flatten(saved), _flatten(current)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))
    return [k for k in keys if not k.startswith(RESUMABLE_PREFIXES)]


def describe_diff(saved: dict[str, Any], current: dict[str, Any], keys: list[str]) -> str:
    a, b = _flatten(saved), _flatten(current)
    return ", ".join(f"{k} (checkpoint {a.get(k, '<unset>')!r}, now {b.get(k, '<unset>')!r})" for k in keys)


_MISSING = object()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}
