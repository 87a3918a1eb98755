"""``run_experiment``: the one composition root that the CLI, Tune and tests call."""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedray.config import ExperimentConfig, dump_yaml
from fedray.plan import RunPlan, make_orchestrator, plan_run
from fedray.rundir import RunDir

RESULT_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


@dataclass
class RunResult:
    """What a finished run leaves: its directory, summary, per-round rows and global tensors."""

    run_dir: str
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(repr=False)
    state: dict[str, np.ndarray] = field(repr=False)


def run_experiment(cfg: ExperimentConfig, out: str | None = None, *, address: str | None = None,
                   progress: Callable[[str], None] | None = None,
                   on_record: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Validate, plan, run one method end to end, and write the run directory.

    Everything that can be checked (config, dataset, partition, output location) is checked
    before Ray starts or any model is built. ``progress`` receives one line per round (default:
    stderr); ``on_record`` receives each round's metrics record (Tune reports from it).
    """
    plan = plan_run(cfg)
    run_dir = RunDir.create(out, cfg.name, storage=cfg.data.storage)
    run_dir.write_text("config.yaml", dump_yaml(cfg))
    run_dir.write_json("partition.json", plan.partition)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    try:
        outcome = None
        for record in _records(plan, address):
            if "__outcome__" in record:
                outcome = record["__outcome__"]
                break
            record = _clean(record)
            rows.append(record)
            run_dir.append_row(record)
            say(_progress_line(record))
            if on_record is not None:
                on_record(record)
        assert outcome is not None, "the run ended without a final result"
    except BaseException as err:
        run_dir.write_text("FAILED", f"{type(err).__name__}: {err}\n")
        raise
    summary = {
        "name": cfg.name,
        "method": cfg.train.method,
        "dataset": plan.info.name,
        "rounds": outcome.rounds,
        "stages": cfg.train.stages if cfg.train.method != "fedmml" else 1,
        "clients": cfg.data.num_clients,
        "metrics": _clean({k.removeprefix("eval/"): v for k, v in outcome.metrics.items()}),
        "resources": {"comm_bytes": outcome.comm_bytes},
        "wall_time_s": time.perf_counter() - start,
    }
    run_dir.write_json("summary.json", summary)
    return RunResult(str(run_dir.path), summary, rows, outcome.state)


def _records(plan: RunPlan, address: str | None) -> Iterator[dict[str, Any]]:
    """Per-round records from the chosen backend; the last one carries ``__outcome__``."""
    if plan.cfg.runtime.backend == "local":
        yield from _run_local(plan)
        return
    from fedray.backend import ray_session, run_on_ray  # Ray is imported only when used

    with ray_session(plan.cfg.runtime, address):
        yield from run_on_ray(plan, namespace=f"fedray-{uuid.uuid4().hex[:8]}")


def _run_local(plan: RunPlan) -> Iterator[dict[str, Any]]:
    from fedray.client import ClientHost
    from fedray.server import InProcessFleet

    hosts = [ClientHost(plan.cfg, plan.info, plan.host_rows(h), threads=plan.cfg.runtime.torch_threads)
             for h in range(len(plan.hosts))]
    gen = make_orchestrator(plan, InProcessFleet(hosts)).run()
    try:
        while True:
            yield next(gen)
    except StopIteration as stop:
        yield {"__outcome__": stop.value}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: write null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _progress_line(r: dict[str, Any]) -> str:
    loss = r.get("train/loss")
    r1 = r.get("eval/i2t_r1")
    parts = [f"[{r['method']}] stage {r['stage']} round {r['round']:>3}",
             f"loss {loss:.4f}" if loss is not None else "loss   n/a"]
    if r.get("eval/accuracy") is not None:
        parts.append(f"acc {r['eval/accuracy']:.3f} macro-F1 {r.get('eval/macro_f1', math.nan):.3f}")
    if r1 is not None:
        parts.append(f"i2t R@1 {r1:.3f} t2i R@1 {r.get('eval/t2i_r1', math.nan):.3f}")
    parts.append(f"{r['time/elapsed_s']:.1f}s")
    return " | ".join(parts)
