"""What a trial reports to Tune each round, and the names it can report (checked before a sweep starts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from fedray.config import ExperimentConfig
from fedray.training.evaluate import KS

# Keys of every orchestrator round record (fedray/server/orchestrator.py), reported as they are.
ROUND_KEYS = ("round", "stage", "stage_round", "cohort", "train/loss", "comm/bytes_to_clients",
              "comm/bytes_from_clients", "comm/total_bytes", "time/round_s", "time/elapsed_s")
# Running totals the trial adds when the round records carry the resource ledger's per-round figures.
FLOPS = "resources/flops"  # training FLOPs of all clients so far
PEAK_MEMORY = "resources/peak_memory_bytes"  # the largest any client reached so far


def eval_metrics(cfg: ExperimentConfig) -> set[str]:
    """Names that ``fedray.training.evaluate`` produces for this model's modalities."""
    towers = list(cfg.model.towers)
    names = {"eval/loss"}
    names |= {f"eval/{a[0]}2{b[0]}_r{k}" for a, b in permutations(towers, 2) for k in KS}
    return names


def reported_metrics(cfg: ExperimentConfig) -> set[str]:
    """Every numeric name a trial of ``cfg`` reports each round (eval values carried between evals)."""
    return set(ROUND_KEYS) | eval_metrics(cfg) | {FLOPS, PEAK_MEMORY}


@dataclass
class RoundReporter:
    """Turns orchestrator records into Tune results: eval metrics carried forward, resource totals so far."""

    cfg: ExperimentConfig
    last_eval: dict[str, float] = field(default_factory=dict)
    flops: float = math.nan  # NaN until a record carries ledger figures (not measured is not zero)
    peak_memory: float = math.nan

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: record[k] for k in ROUND_KEYS if k in record}
        self.last_eval.update({k: v for k, v in record.items() if k.startswith("eval/")})
        for name in eval_metrics(self.cfg):  # Tune and ASHA need the metric in every result
            out[name] = _num(self.last_eval.get(name))
        self._ledger(record)
        out[FLOPS] = self.flops
        out[PEAK_MEMORY] = self.peak_memory
        # What the trial ran with, so every result row says it (also when not swept).
        out["method"] = self.cfg.train.method
        out["partition"] = self.cfg.data.partition.kind
        out["beta"] = self.cfg.data.partition.beta
        out["stages"] = self.cfg.train.stages if self.cfg.train.method != "fedmml" else 1
        return out

    def _ledger(self, record: dict[str, Any]) -> None:
        """Per-round FLOPs add up; peak memory is a running maximum. Cumulative ledger keys
        (``*_total``, ``*so_far``) replace the sum instead of adding to it."""
        for key, value in record.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key in (FLOPS, PEAK_MEMORY):
                continue
            leaf = key.rsplit("/", 1)[-1]
            if "flops" in leaf:
                cumulative = leaf.endswith(("_total", "so_far")) or key.startswith("total")
                so_far = 0.0 if math.isnan(self.flops) else self.flops
                self.flops = float(value) if cumulative else so_far + float(value)
            elif "peak" in leaf and "mem" in leaf:
                self.peak_memory = float(value) if math.isnan(self.peak_memory) else max(self.peak_memory, float(value))


def _num(value: Any) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
