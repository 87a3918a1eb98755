"""Checkpoints: the orchestrator's state every K rounds, written atomically, read back safely. No Ray.

A checkpoint holds only tensors and plain Python values (the config as a dict, the metrics rows,
the orchestrator's :meth:`~fedray.server.Orchestrator.export_state`), so it loads with
``torch.load(weights_only=True)``: opening a checkpoint never runs code from the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fedray.config import ConfigError
from fedray.server.orchestrator import Orchestrator

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
FORMAT = 1
# Keys that may change on --resume: where and how the run executes, not what it computes.
RESUMABLE_PREFIXES = ("runtime.",)


def stream(orchestrator: Orchestrator, every: int) -> Iterator[dict[str, Any]]:
    """The orchestrator's records, a ``{"__checkpoint__": state}`` after every ``every``-th round, and a
    final ``{"__outcome__": RunOutcome}``. State is taken while the loop is paused after a round."""
    gen = orchestrator.run()
    try:
        while True:
            record = next(gen)
            yield record
            if every and record["round"] % every == 0:
                yield {"__checkpoint__": orchestrator.export_state()}
    except StopIteration as stop:
        yield {"__outcome__": stop.value}


def to_bytes(data: dict[str, Any]) -> bytes:
    """A checkpoint as bytes for the run directory's atomic ``write_bytes`` (local: temp + rename)."""
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def checkpoint_payload(config: dict[str, Any], rows: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "config": config, "rows": rows, "state": state}


def load(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN_DIR/checkpoint.pt``; errors say what is wrong with the directory."""
    path = Path(run_dir) / CHECKPOINT
    if not Path(run_dir).is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run directory")
    if (Path(run_dir) / "summary.json").exists():
        raise ConfigError(f"--resume {run_dir}: the run already finished (summary.json exists); nothing to resume")
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: no {CHECKPOINT} in it (the run stopped before its first "
                          "checkpoint, or runtime.checkpoint_every was 0); start a new run instead")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign or damaged file: say so instead of a pickle traceback
        raise ConfigError(f"--resume {run_dir}: {CHECKPOINT} is not a readable fedray checkpoint "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"--resume {run_dir}: {CHECKPOINT} is not a fedray checkpoint of format {FORMAT}")
    return data


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
