"""The Tune trainable: one fedray run per trial, through the same ``run_experiment`` as ``fedray run``."""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import tune

from fedray.api import resume_experiment, run_experiment
from fedray.rundir import RunDir
from fedray.schedules import build_schedule
from fedray.server.checkpoint import CHECKPOINT
from fedray.tune.metrics import RoundReporter
from fedray.tune.spec import trial_config

STATE = "state.json"  # inside each Tune checkpoint: the last reported round and the run directory


def fedray_trial(params: dict[str, Any], *, base: dict[str, Any], sweep_dir: str, sweep_name: str) -> None:
    """Run the experiment ``base`` + ``params`` and ``tune.report`` every round with a checkpoint.

    Writes ``<sweep_dir>/trials/<trial_id>/run`` (a normal fedray run directory) and ``trial.json``
    (swept values, start and end times). A trial restored after an interruption continues its run from
    the run's last checkpoint (``resume_experiment``: bit-identical to an uninterrupted run; rounds before
    the checkpoint are not recomputed, rounds already reported to Tune are not reported again). A run
    that had finished on disk replays its rows; one interrupted before its first checkpoint starts over
    in ``run~2``.
    """
    trial_id = tune.get_context().get_trial_id()
    cfg = trial_config(base, params, name=f"{sweep_name}-{trial_id}")
    cpus, gpus, hosts = _client_bundles()
    # Client actors ask for exactly what this trial's bundles hold (never "share the cluster"), and
    # "auto" packing is what the sweep resolved for its cluster: one actor per client bundle reserved.
    per_actor = cfg.runtime.clients_per_actor
    if per_actor == "auto":
        per_actor = math.ceil(cfg.data.num_clients / hosts)
    cfg = replace(cfg, runtime=replace(cfg.runtime, backend="ray", address=None, client_cpus=cpus, client_gpus=gpus,
                                       server_cpus=cpus, clients_per_actor=per_actor))
    reported, previous = _resume_point(tune.get_checkpoint())
    trial = RunDir(Path(sweep_dir) / "trials" / trial_id)
    trial.path.mkdir(parents=True, exist_ok=True)
    # Interrupted after its run was written but before Tune heard the last round: replay, do not rerun.
    replay = previous is not None and (previous / "summary.json").is_file()
    resume = not replay and previous is not None and (previous / CHECKPOINT).is_file()
    if replay or resume:
        run_path, info = previous, json.loads((trial.path / "trial.json").read_text())
        if resume:
            info |= {"resumed_from_round": reported}
            trial.write_json("trial.json", info)
    else:
        run_path = next(p for k in range(1, 1000) if not (p := trial.path / ("run" if k == 1 else f"run~{k}")).exists())
        info = {"trial_id": trial_id, "params": params, "run_dir": run_path.name, "started_at": time.time(),
                "resumed_from_round": reported, "client_cpus": cpus, "client_gpus": gpus}
        trial.write_json("trial.json", info)
    to_result = RoundReporter(cfg)
    last_round = sum(stage.rounds for stage in build_schedule(cfg))
    final: list[dict[str, Any]] = []  # the last round's result
    seen = {"round": 0}

    def report(result: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as ckpt:
            (Path(ckpt) / STATE).write_text(json.dumps({"round": result["round"], "run_dir": str(run_path)}))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(ckpt))

    def on_record(record: dict[str, Any]) -> None:
        result = to_result(record)  # always: eval values and totals carry across rounds
        seen["round"] = record["round"]
        if record["round"] == last_round:
            final.append(result)  # reported once the run directory is complete (Tune may stop us on it)
        elif record["round"] > reported:
            report(result)  # raises SystemExit when the scheduler stops this trial

    try:
        if replay:
            for line in (run_path / "metrics.jsonl").read_text().splitlines():
                on_record(json.loads(line))
        elif resume:  # the checkpoint's rows come back through on_record first, then the new rounds
            resume_experiment(str(run_path), cfg, on_record=on_record, progress=lambda line: None)
        else:
            run_experiment(cfg, str(run_path), on_record=on_record, progress=lambda line: None)
    except SystemExit:
        trial.write_json("trial.json", info | {"stopped_at_round": seen["round"], "ended_at": time.time()})
        raise
    if "finished_at" not in info:
        trial.write_json("trial.json", info | {"finished_at": time.time()})
    report(final[-1])


def _client_bundles() -> tuple[float, float, int]:
    """CPU and GPU of one actor bundle of this trial's placement group, and how many are for clients.

    Bundles (``bundles.trial_bundles``): the trainable, then one per actor (server and clients).
    """
    group = ray.util.get_current_placement_group()
    if group is None:
        raise RuntimeError("fedray trials must run inside a placement group (tune.PlacementGroupFactory)")
    last = group.bundle_specs[-1]
    return float(last.get("CPU", 0.0)), float(last.get("GPU", 0.0)), len(group.bundle_specs) - 2


def _resume_point(checkpoint: tune.Checkpoint | None) -> tuple[int, Path | None]:
    """The last round reported before an interruption, and that attempt's run directory."""
    if checkpoint is None:
        return 0, None
    with checkpoint.as_directory() as d:
        state = json.loads((Path(d) / STATE).read_text())
    return int(state["round"]), Path(state["run_dir"])
