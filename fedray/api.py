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
import yaml

from fedray.config import ConfigError, ExperimentConfig, dump_yaml
from fedray.config.loader import build
from fedray.data import open_dataset
from fedray.data.fingerprint import compare, fingerprint
from fedray.interrupt import named
from fedray.model.export import export_run
from fedray.model.pretrained import checkpoint_inputs
from fedray.plan import RunPlan, local_cpus, pack_hosts, plan_data
from fedray.rundir import CLIENTS, RunDir
from fedray.schedules import method
from fedray.server import Checkpoint, Event, Finished, RoundDone, ServerState
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
    plan = plan_data(cfg)
    run_dir = RunDir.create(out, cfg.name, storage=cfg.data.storage)
    with ExitStack() as stack:
        try:
            stack.enter_context(_session(cfg, address))
        except BaseException:
            run_dir.discard()  # could not reach Ray: leave nothing behind
            raise
        run_dir.write_text("config.yaml", dump_yaml(cfg))
        run_dir.write_json("partition.json", plan.partition)
        data = fingerprint(plan.info) if cfg.runtime.checkpoint_every else None  # what --resume compares with
        return _execute(_packed(plan), run_dir, [], None, data, progress, on_record)


def resume_experiment(run_dir: str, cfg: ExperimentConfig | None = None, *, address: str | None = None,
                      progress: Callable[[str], None] | None = None,
                      on_record: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Continue ``run_dir`` (a local directory or an s3:// prefix) from its last checkpoint, in the same place.

    ``cfg`` (optional) must equal the checkpoint's config except ``runtime.*`` keys; without it the
    run's own config is used (S3 credentials then come from the ``AWS_*`` environment variables). The
    result equals an uninterrupted run with the same seed. ``on_record`` first receives the rows
    restored from the checkpoint, then one per new round.
    """
    saved = checkpoint.load(run_dir, cfg.data.storage if cfg is not None else None)
    if cfg is None:
        cfg = build(saved.config)
    else:
        diff = checkpoint.config_diff(saved.config, _plain(cfg))
        if diff:
            raise ConfigError(f"--resume {run_dir}: the checkpoint was written with a different config: "
                              f"{checkpoint.describe_diff(saved.config, _plain(cfg), diff)}; resume without "
                              "config arguments to use the run's own config, or start a new run")
    # Before planning: a replaced file is named as such, not by whatever planning then finds odd about it.
    data = fingerprint(checkpoint_inputs(cfg, open_dataset(cfg.data.source, cfg.data.storage)))
    changed = compare(saved.data, data)
    if changed:  # continuing on other data would mix two datasets in one result
        raise ConfigError(f"--resume {run_dir}: the data changed since the checkpoint: {'; '.join(changed)}; "
                          "restore the data the run started with, or start a new run")
    plan = plan_data(cfg)
    rows = list(saved.rows)
    with _session(cfg, address):
        rdir = RunDir.reopen(run_dir, rows, cfg.data.storage)  # metrics/clients rows go back to the checkpoint's
        rdir.write_text("config.yaml", dump_yaml(cfg))
        for row in rows if on_record is not None else ():
            on_record(row)
        return _execute(_packed(plan), rdir, rows, saved.state, data, progress, on_record)


def _plain(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as written to config.yaml (credentials removed): what a checkpoint stores and compares."""
    return yaml.safe_load(dump_yaml(cfg))


def _session(cfg: ExperimentConfig, address: str | None) -> Any:
    """Ray joined or started for the ray backend (shut down on exit only if fedray started it)."""
    if cfg.runtime.backend == "local":
        return nullcontext()
    from fedray.backend import ray_session  # Ray is imported only when used

    return ray_session(cfg.runtime, address)


def _packed(plan: RunPlan) -> RunPlan:
    """Hosts packed once, for the resources the clients get: this machine, or the Ray cluster joined or started."""
    if plan.cfg.runtime.backend == "local":
        return pack_hosts(plan, local_cpus(plan.cfg))
    from fedray.backend import cluster_slots

    return pack_hosts(plan, *cluster_slots())


def _execute(plan: RunPlan, run_dir: RunDir, rows: list[dict[str, Any]], state: ServerState | None,
             data: dict[str, Any] | None, progress: Callable[[str], None] | None,
             on_record: Callable[[dict[str, Any]], None] | None) -> RunResult:
    """Drive the rounds, write rows, checkpoints (with the data's fingerprint ``data``), the final model, the
    towers and the summary."""
    cfg = plan.cfg
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.perf_counter()
    outcome = None
    try:
        for event in _events(plan, state, run_dir):
            if isinstance(event, RoundDone):
                record = _clean(event.record)
                rows.append(record)
                run_dir.append_row(record)
                run_dir.append_lines(CLIENTS, [_clean(c) for c in event.clients])
                say(_progress_line(record))
                if on_record is not None:
                    on_record(record)
            elif isinstance(event, Checkpoint):
                run_dir.write_bytes(checkpoint.CHECKPOINT, checkpoint.dumps(_plain(cfg), list(rows), event.state, data))
            elif isinstance(event, Finished):
                outcome = event.outcome
        assert outcome is not None, "the run ended without a final result"
        final = outcome.state
        run_dir.write_bytes(checkpoint.MODEL, checkpoint.model_bytes(final.tensors))
        # one save_pretrained directory per tower (AutoModel.from_pretrained loads it), local or s3://
        run_dir.write_tree("towers", lambda path: export_run(cfg, plan.info, final.tensors, path))
    except BaseException as err:
        cause = named(err)  # a SIGTERM that Ray re-raised as a plain KeyboardInterrupt keeps its name
        run_dir.write_text("FAILED", f"{type(cause).__name__}: {cause}\n")
        if cause is not err:
            raise cause from None
        raise
    spent = final.ledger.total
    summary = {
        "name": cfg.name,
        "method": cfg.train.method,
        "dataset": plan.info.name,
        "rounds": final.rounds_done,
        "stages": method(cfg.train.method).stage_count(cfg.train.stages),
        "clients": cfg.data.num_clients,
        "metrics": _clean({k.removeprefix("eval/"): v for k, v in (outcome.metrics or _last_eval(rows)).items()}),
        "resources": {"comm_bytes": spent.comm_bytes, "flops": spent.flops,
                      "peak_memory_bytes": spent.peak_memory_bytes},
        "wall_time_s": time.perf_counter() - start,
    }
    if plan.devices is not None or cfg.train.target:  # the simulated device clock; when each target was reached
        from fedray.devices.summary import fleet_summary, time_to_target

        summary["fleet"] = fleet_summary(rows, cfg.data.num_clients)
        summary["targets"] = time_to_target(rows, dict(cfg.train.target))
    run_dir.write_json("summary.json", summary)
    return RunResult(str(run_dir.path), summary, rows, dict(final.tensors))


def _events(plan: RunPlan, state: ServerState | None, run_dir: RunDir) -> Iterator[Event]:
    """The run's events from the chosen backend: the same loop in this process or in the Ray server actor."""
    if plan.cfg.runtime.backend == "local":
        from fedray.client import ClientHost
        from fedray.server import InProcessFleet, build_server, run_rounds

        hosts = [ClientHost(plan.cfg, plan.info, plan.host_rows(h), threads=plan.cfg.runtime.torch_threads)
                 for h in range(len(plan.hosts))]
        ctx, evaluate, initial = build_server(plan)
        yield from run_rounds(state or initial, ctx, InProcessFleet(hosts), evaluate, plan.cfg.runtime.checkpoint_every)
        return
    from fedray.backend import run_on_ray

    namespace = f"fedray-{uuid.uuid4().hex[:8]}"
    run_dir.write_json("ray.json", {"namespace": namespace})  # where to find this run's actors
    yield from run_on_ray(plan, namespace, state)


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
