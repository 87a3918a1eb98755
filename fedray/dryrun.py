"""``fedray run --dry-run``: the resolved config and what the run would do, with no Ray and no training.

The plan is the real one (``plan_run``: dataset checks, partition, host packing); the per-stage
figures come from ``fedray resources``' measurement of one local step per stage on a synthetic batch
(a second or two on the default preset), for the configured method only.
"""

from __future__ import annotations

from typing import Any

from fedray.config import ExperimentConfig, dump_yaml


def dry_run(cfg: ExperimentConfig) -> str:
    """The config as YAML, then the plan: clients, hosts, stages, rounds, bytes per round, memory per stage."""
    from fedray.plan import plan_run
    from fedray.resources.estimate import Workload, estimate
    from fedray.server import cohort_size

    plan = plan_run(cfg)
    sizes = sorted(len(rows) for rows in plan.client_rows)
    cohort = cohort_size(cfg.data.num_clients, cfg.train.participation)
    report = estimate(cfg, Workload(plan.info.inputs, sizes[0]), methods=(cfg.train.method,))
    return plan_text(cfg, plan, sizes, cohort, report)


def plan_text(cfg: ExperimentConfig, plan: Any, sizes: list[int], cohort: int, report: dict[str, Any]) -> str:
    """The dry run's text (split from :func:`dry_run` so its layout is tested without measuring)."""
    mib = 2**20
    per_host = sorted({len(h) for h in plan.hosts})
    where = ("in this process (runtime.backend: local)" if cfg.runtime.backend == "local" else
             f"{len(plan.hosts)} client actor(s) of {'/'.join(map(str, per_host))} client(s) + 1 server actor on Ray")
    part = cfg.data.partition
    lines = [
        "# resolved config", dump_yaml(cfg).rstrip(), "",
        f"# plan (dry run: no Ray started, nothing written) -- method {cfg.train.method}",
        f"dataset: {plan.info.name}, {sum(sizes)} training rows, {len(plan.eval_rows)} held-out rows evaluated",
        f"clients: {cfg.data.num_clients} ({part.kind}" + (f", beta {part.beta}" if part.kind == "dirichlet" else "")
        + f"), {sizes[0]}..{sizes[-1]} rows each; cohort {cohort} per round",
        f"hosts: {where}",
        f"local steps per round: {report['local_steps_per_round']} on the smallest shard "
        f"({cfg.train.local_epochs} epoch(s), batch {cfg.train.batch_size})",
        "",
        "| stage | rounds | depths | exchanged per client MiB | bytes per round MB (cohort, both ways) "
        "| prefix sync per client MiB | training memory per client MiB (modelled) | step GFLOPs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total_rounds = total_bytes = 0
    for s in report["stages"]:
        per_round = cohort * 2 * s["exchanged_bytes"]
        total_rounds += s["rounds"]
        total_bytes += s["rounds"] * per_round + (cohort * s["prefix_sync_bytes"] if s["rounds"] else 0)
        lines.append(f"| {s['stage']} | {s['rounds']} | {'/'.join(str(v) for v in s['depths'].values())} "
                     f"| {s['exchanged_bytes'] / mib:.3f} | {per_round / 1e6:.3f} | {s['prefix_sync_bytes'] / mib:.3f} "
                     f"| {s['memory']['total'] / mib:.2f} | {s['step_flops'] / 1e9:.4g} |")
    lines += ["", f"total: {total_rounds} rounds, {total_bytes / 1e6:.1f} MB exchanged (exact when the same {cohort} "
                  "clients take part in every round; a client sampled later also gets the prefix sync)",
              f"depths are blocks per tower ({'/'.join(cfg.model.towers)}); measured in {report['seconds']:.1f} s"]
    return "\n".join(lines) + "\n"
