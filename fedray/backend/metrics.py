"""Dashboard metrics through ``ray.util.metrics``, tagged with the run name, its unique id and the method.

Ray exports them on each node's metrics port (Prometheus text) as ``ray_fedray_*``, so they show up in
the dashboard's Grafana panels next to Ray's own. Recorded in the server actor, one update per round.
Values are figures only: no paths, addresses or credentials ever go into a metric or a tag.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

TAG_KEYS = ("run", "run_id", "method")
SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000]


class RunMetrics:
    """The per-round figures a user watches in the dashboard."""

    def __init__(self, run: str, method: str, run_id: str = "") -> None:
        """``run``: the config name; ``run_id``: unique per run (its Ray namespace, as in ``RUN_DIR/ray.json``),
        so two runs of one preset are told apart."""
        tags = {"run": run, "run_id": run_id, "method": method}

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"fedray_{name}", doc, tag_keys=TAG_KEYS + extra).set_default_tags(tags)

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"fedray_{name}", doc, tag_keys=TAG_KEYS).set_default_tags(tags)

        self.stage = gauge("stage", "Current stage (1-based)")
        self.round = gauge("round", "Rounds finished so far")
        self.cohort = gauge("cohort_clients", "Clients sampled in the last round")
        self.completed = gauge("completed_clients", "Clients of the last round's cohort whose update was used")
        self.eval = gauge("eval_metric", "Last evaluation, one series per metric (eval/i2t_r1, ...)", ("metric",))
        self.rounds = counter("rounds", "Rounds finished")
        self.sent = counter("bytes_sent", "Bytes sent to clients (payload and frozen-prefix syncs)")
        self.received = counter("bytes_received", "Bytes received from clients")
        self.failures = counter("client_failures", "Client actor deaths and dropped stragglers")
        self.train_seconds = Histogram("fedray_local_train_seconds", "Local training time of one client in one round",
                                       boundaries=SECONDS_BUCKETS, tag_keys=TAG_KEYS).set_default_tags(tags)

    def on_clients(self, seconds: Iterable[float]) -> None:
        """Local training times of the clients that returned this round."""
        for s in seconds:
            self.train_seconds.observe(s)

    def on_round(self, record: dict[str, Any]) -> None:
        """One round's record (after the fleet's fault counts were merged into it)."""
        self.stage.set(record["stage"])
        self.round.set(record["round"])
        self.rounds.inc()
        self.cohort.set(record["cohort"])
        failures = record.get("fault/client_failures", 0) + record.get("fault/stragglers", 0)
        self.completed.set(record.get("fault/completed", record["cohort"]))
        if failures:
            self.failures.inc(failures)
        if record["comm/bytes_to_clients"]:
            self.sent.inc(record["comm/bytes_to_clients"])
        if record["comm/bytes_from_clients"]:
            self.received.inc(record["comm/bytes_from_clients"])
        for key, value in record.items():
            if key.startswith("eval/") and isinstance(value, (int, float)) and value == value:  # skip NaN
                self.eval.set(value, tags={"metric": key})
