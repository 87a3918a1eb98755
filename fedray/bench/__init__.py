"""Benchmarks (``fedray bench NAME``): figures printed and written as JSON, never timed tests."""

from __future__ import annotations

from typing import Any

from fedray.bench.common import write_json

NAMES = ("startup", "overhead", "prefix-cache", "scale", "validate", "fleet")


def run_bench(name: str, repeats: int | None = None, json_out: str | None = None, device: str = "cpu",
              loop_threads: list[int] | None = None) -> dict[str, Any]:
    """Run one benchmark and write its report to ``json_out``."""
    if name == "startup":
        from fedray.bench import startup

        report = startup.run(repeats or 5)
    elif name == "overhead":
        from fedray.bench import overhead

        report = overhead.run(repeats or 3, device, loop_threads=tuple(loop_threads) if loop_threads else None)
    elif name == "prefix-cache":
        from fedray.bench import prefix_cache

        report = prefix_cache.run(repeats or 3)
    elif name == "scale":
        from fedray.bench import scale

        report = scale.run(repeats or 1)
    elif name == "validate":
        from fedray.bench import validate

        report = validate.run(repeats or 3)
    elif name == "fleet":
        from fedray.bench import fleet

        report = fleet.run(repeats or 3)
    else:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(NAMES)}")
    write_json(json_out, report)
    return report
