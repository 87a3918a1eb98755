"""``run_experiment``: the one composition root that the CLI, Tune and tests call."""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml

from fedray.config import ConfigError, ExperimentConfig, dump_yaml
from fedray.config.loader import build
from fedray.plan import RunPlan, make_orchestrator, plan_run
from fedray.rundir import RunDir
from fedray.server import checkpoint

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
    with ExitStack() as stack:
        try:
            stack.enter_context(_session(cfg, address))
        except BaseException:
            run_dir.discard()  # could not reach Ray: leave nothing behind
            raise
        run_dir.write_text("config.yaml", dump_yaml(cfg))
        run_dir.write_json("partition.json", plan.partition)
        return _execute(plan, run_dir, [], None, progress, on_record)


def resume_experiment(run_dir: str, cfg: ExperimentConfig | None = None, *, address: str | None = None,
                      progress: Callable[[str], None] | None = None,
                      on_record: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Continue ``run_dir`` from its last checkpoint, in the same directory.

    ``cfg`` (optional) must equal the checkpoint's config except ``runtime.*`` keys; without it the
    run's own config is used. The result equals an uninterrupted run with the same seed.
    """
    saved = checkpoint.load(run_dir)
    if cfg is None:
        cfg = build(saved["config"])
    else:
        diff = checkpoint.config_diff(saved["config"], _plain(cfg))
        if diff:
            raise ConfigError(f"--resume {run_dir}: the checkpoint was written with a different config: "
                              f"{checkpoint.describe_diff(saved['config'], _plain(cfg), diff)}; resume without "
                              "config arguments to use the run's own config, or start a new run")
    plan = plan_run(cfg)
    rows = list(saved["rows"])
    with _session(cfg, address):
        rdir = RunDir.reopen(run_dir, rows)  # metrics.jsonl goes back to the checkpoint's rows
        rdir.write_text("config.yaml", dump_yaml(cfg))
        return _execute(plan, rdir, rows, saved["state"], progress, on_record)


def _plain(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as written to config.yaml (credentials removed): what a checkpoint stores and compares."""
    return yaml.safe_load(dump_yaml(cfg))


def _session(cfg: ExperimentConfig, address: str | None) -> Any:
    """Ray joined or started for the ray backend (shut down on exit only if fedray started it)."""
    if cfg.runtime.backend == "local":
        return nullcontext()
    from fedray.backend import ray_session  # Ray is imported only when used

    return ray_session(cfg.runtime, address)


def _execute(plan: RunPlan, run_dir: RunDir, rows: list[dict[str, Any]], resume: dict[str, Any] | None,
             progress: Callable[[str], None] | None,
             on_record: Callable[[dict[str, Any]], None] | None) -> RunResult:
    """Drive the rounds, write rows, checkpoints, the final model and the summary."""
    cfg = plan.cfg
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.perf_counter()
    try:
        outcome = None
        for record in _records(plan, resume, run_dir):
            if "__outcome__" in record:
                outcome = record["__outcome__"]
                break
            if "__checkpoint__" in record:
                run_dir.write_bytes(checkpoint.CHECKPOINT, checkpoint.to_bytes(
                    checkpoint.checkpoint_payload(_plain(cfg), list(rows), record["__checkpoint__"])))
                continue
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
    run_dir.write_bytes(checkpoint.MODEL, checkpoint.to_bytes({n: torch.from_numpy(np.array(v))
                                                              for n, v in outcome.state.items()}))
    summary = {
        "name": cfg.name,
        "method": cfg.train.method,
        "dataset": plan.info.name,
        "rounds": outcome.rounds,
        "stages": cfg.train.stages if cfg.train.method != "fedmml" else 1,
        "clients": cfg.data.num_clients,
        "metrics": _clean({k.removeprefix("eval/"): v for k, v in (outcome.metrics or _last_eval(rows)).items()}),
        "resources": {"comm_bytes": outcome.comm_bytes, "flops": outcome.flops,
                      "peak_memory_bytes": outcome.peak_memory_bytes},
        "wall_time_s": time.perf_counter() - start,
    }
    run_dir.write_json("summary.json", summary)
    return RunResult(str(run_dir.path), summary, rows, outcome.state)


def _records(plan: RunPlan, resume: dict[str, Any] | None, run_dir: RunDir) -> Iterator[dict[str, Any]]:
    """Per-round records from the chosen backend, checkpoint states, and last ``__outcome__``."""
    if plan.cfg.runtime.backend == "local":
        yield from _run_local(plan, resume)
        return
    from fedray.backend import run_on_ray

    namespace = f"fedray-{uuid.uuid4().hex[:8]}"
    run_dir.write_json("ray.json", {"namespace": namespace})  # where to find this run's actors
    yield from run_on_ray(plan, namespace, resume)


def _run_local(plan: RunPlan, resume: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    from fedray.client import ClientHost
    from fedray.server import InProcessFleet

    hosts = [ClientHost(plan.cfg, plan.info, plan.host_rows(h), threads=plan.cfg.runtime.torch_threads)
             for h in range(len(plan.hosts))]
    orchestrator = make_orchestrator(plan, InProcessFleet(hosts))
    if resume is not None:
        orchestrator.import_state(resume)
    yield from checkpoint.stream(orchestrator, plan.cfg.runtime.checkpoint_every)


def _last_eval(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A run resumed after its last round has no new evaluation: reuse the last one recorded."""
    for row in reversed(rows):
        found = {k: v for k, v in row.items() if k.startswith("eval/")}
        if found:
            return found
    return {}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: write null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _progress_line(r: dict[str, Any]) -> str:
    from fedray.progress import round_line  # one format for the CLI's display and the default lines

    return round_line(r)
