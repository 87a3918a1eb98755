"""Benchmarks (``fedray bench NAME``): figures printed and written as JSON, never timed tests."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from fedray.bench.common import write_json

NAMES = ("startup", "overhead", "memory", "lw-cost", "prefix-cache", "scale", "validate", "fleet")
DEFAULT_REPEATS = {"startup": 5, "scale": 1}  # else 3


def run_bench(name: str, repeats: int | None = None, json_out: str | None = None, device: str = "cpu",
              clients: list[int] | None = None) -> dict[str, Any]:
    """Run one benchmark and write its report to ``json_out``."""
    if name not in NAMES:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(NAMES)}")
    module = import_module(f"fedray.bench.{name.replace('-', '_')}")
    kwargs: dict[str, Any] = {}
    if name == "overhead":
        kwargs["device"] = device
    if name == "scale" and clients:
        kwargs["clients"] = tuple(clients)
    report = module.run(repeats or DEFAULT_REPEATS.get(name, 3), **kwargs)
    write_json(json_out, report)
    return report
