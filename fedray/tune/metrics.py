"""What a trial reports to Tune each round, and the names it can report (checked before a sweep starts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from fedray.config import ExperimentConfig
from fedray.schedules import method
from fedray.training.evaluate import KS

# Keys of every round record (fedray/server/rounds.py RoundRecord.row, plus the loop's times), reported as they are.
ROUND_KEYS = ("round", "stage", "stage_round", "cohort", "train/loss", "comm/bytes_to_clients",
              "comm/bytes_from_clients", "comm/total_bytes", "time/round_s", "time/elapsed_s")
# The resource ledger's keys in round records: FLOPs of all clients so far, and this round's largest client peak.
LEDGER_TOTAL_FLOPS = "res/total_flops"
LEDGER_PEAK_MEMORY = "res/peak_memory_bytes"
# What the trial reports from them (NaN when a run records no ledger: not measured is not zero).
FLOPS = "resources/flops"  # training FLOPs of all clients so far
PEAK_MEMORY = "resources/peak_memory_bytes"  # the largest any client reached so far


def eval_metrics(cfg: ExperimentConfig) -> set[str]:
    """Names that ``fedray.training.evaluate`` produces: accuracy and macro-F1 for the supervised task,
    else recall@K for every ordered pair of modalities (i=image, t=text, a=audio)."""
    if getattr(cfg.model, "task", "contrastive") == "classification":
        return {"eval/loss", "eval/accuracy", "eval/macro_f1"}
    towers = list(cfg.model.towers)
    recall = {f"eval/{a[0]}2{b[0]}_r{k}" for a, b in permutations(towers, 2) for k in KS}
    return {"eval/loss"} | recall | {f"{key}_ci95" for key in recall}  # with its bootstrap interval


def reported_metrics(cfg: ExperimentConfig) -> set[str]:
    """Every numeric name a trial of ``cfg`` reports each round (eval values carried between evals)."""
    return set(ROUND_KEYS) | eval_metrics(cfg) | {FLOPS, PEAK_MEMORY}


@dataclass
class RecordTotals:
    """Resource totals so far from the ledger's round figures in records; NaN until a record carries them."""

    flops: float = math.nan
    peak_memory: float = math.nan

    def update(self, record: dict[str, Any]) -> None:
        if LEDGER_TOTAL_FLOPS in record:
            self.flops = float(record[LEDGER_TOTAL_FLOPS])
        if LEDGER_PEAK_MEMORY in record:
            peak = float(record[LEDGER_PEAK_MEMORY])
            self.peak_memory = peak if math.isnan(self.peak_memory) else max(self.peak_memory, peak)


@dataclass
class RoundReporter:
    """Turns round records into Tune results: eval metrics carried forward, resource totals so far."""

    cfg: ExperimentConfig
    last_eval: dict[str, float] = field(default_factory=dict)
    ledger: RecordTotals = field(default_factory=RecordTotals)

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: record[k] for k in ROUND_KEYS if k in record}
        self.last_eval.update({k: v for k, v in record.items() if k.startswith("eval/")})
        for name in eval_metrics(self.cfg):  # Tune and ASHA need the metric in every result
            out[name] = _num(self.last_eval.get(name))
        self.ledger.update(record)
        out[FLOPS] = self.ledger.flops
        out[PEAK_MEMORY] = self.ledger.peak_memory
        # What the trial ran with, so every result row says it (also when not swept).
        out["method"] = self.cfg.train.method
        out["partition"] = self.cfg.data.partition.kind
        out["beta"] = self.cfg.data.partition.beta
        out["stages"] = method(self.cfg.train.method).stage_count(self.cfg.train.stages)
        return out


def _num(value: Any) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
