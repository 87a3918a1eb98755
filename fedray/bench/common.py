"""Shared benchmark helpers: medians, a quiet run, process-tree memory and GPU utilisation samplers."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any



def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc (Linux; psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, ppid
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it has exited)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by live processes ``pids`` (a load-independent cost figure)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """Peak summed RSS of this process and all its descendants (the local Ray's GCS, raylet, workers, actors)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        pids = process_tree(os.getpid())
        total = sum(rss_bytes(p) for p in pids)
        count = len(pids)
        if total > self.peak:
            self.peak, self.peak_procs = total, count
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class GpuSampler:
    """GPU utilisation (%) sampled with nvidia-smi (or torch.cuda.utilization) while a block runs."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> float | None:
        if shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10)
            values = [float(v) for v in out.stdout.split() if v.strip()]
            return sum(values) / len(values) if values else None
        try:
            import torch

            return float(torch.cuda.utilization()) if torch.cuda.is_available() else None
        except Exception:  # pynvml missing: no reading rather than a failed benchmark
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {"mean_pct": sum(self.samples) / len(self.samples) if self.samples else float("nan"),
                "max_pct": max(self.samples, default=float("nan")), "samples": len(self.samples)}


def silent(_: str) -> None:
    """A progress callback that prints nothing (benchmarks print their own figures)."""


def now() -> float:
    return time.perf_counter()
