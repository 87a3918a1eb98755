"""``fedray bench memory``: peak resident memory of a whole ``fedray run``, summed over its process tree.

Each measurement is the real command (``python -m fedray.cli run``, which starts its own local Ray) with a sampler
summing the RSS of it and every descendant (GCS, raylet, dashboard agents, workers, the server and client actors)
every 0.2 s. Compared side by side, order alternating: one client actor per client (fedray's packing before
``clients_per_actor: auto`` became the default) and the default. The breakdown at the peak says where it goes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fedray.bench.common import median, process_tree, rss_bytes

RUN = ["--preset", "default", "--set", "train.method=fedmml", "--set", "train.rounds=[1,1]"]
CONFIGS = {"1 actor per client": ["--set", "runtime.clients_per_actor=1"], "default": []}


def role(pid: int) -> str:
    """What a process is, from its command line (Ray sets actor workers' titles to ``ray::Class.method``)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    title = cmd.split(" ", 1)[0]  # ray::HostActor.train, or ray::fedray-client-001:HostActor.__init__ while starting
    if title.startswith("ray::") and "ServerActor" in title:
        return "server actor"
    if title.startswith("ray::") and "HostActor" in title:
        return "client actors"
    if "fedray.cli" in cmd:
        return "driver (fedray command)"
    return "Ray daemons and idle workers"


def measure(args: list[str], out: str) -> dict[str, Any]:
    """Run ``fedray run ARGS --out OUT``; the peak summed RSS and its breakdown by role."""
    proc = subprocess.Popen([sys.executable, "-m", "fedray.cli", "run", *args, "--out", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak: dict[str, Any] = {"total": 0, "roles": {}, "processes": 0}

    def sample() -> None:
        while proc.poll() is None:
            rss = {pid: rss_bytes(pid) for pid in process_tree(proc.pid)}
            if sum(rss.values()) > peak["total"]:
                roles: dict[str, int] = {}
                for pid, value in rss.items():
                    roles[role(pid)] = roles.get(role(pid), 0) + value
                peak.update(total=sum(rss.values()), roles=roles, processes=len(rss))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"fedray run {' '.join(args)} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"peak_mb": peak["total"] / 2**20, "processes": peak["processes"],
            "roles_mb": {k: v / 2**20 for k, v in sorted(peak["roles"].items())}}


def run(repeats: int = 3) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fedray-bench-memory-") as tmp:
        for i in range(repeats):
            for name in CONFIGS if i % 2 == 0 else list(CONFIGS)[::-1]:
                runs[name].append(measure(RUN + CONFIGS[name], os.path.join(tmp, f"{len(runs[name])}-{name[:3]}")))
                m = runs[name][-1]
                print(f"repeat {i + 1}/{repeats} {name}: peak {m['peak_mb']:.0f} MB over {m['processes']} processes "
                      f"({', '.join(f'{k} {v:.0f}' for k, v in m['roles_mb'].items())})", flush=True)
    report: dict[str, Any] = {"bench": "memory", "run": RUN, "repeats": repeats, "loadavg_before": load_before,
                              "loadavg_after": os.getloadavg()[0], "configs": {}}
    for name, ms in runs.items():
        peaks = [m["peak_mb"] for m in ms]
        report["configs"][name] = {"peak_mb": peaks, "median_mb": median(peaks), "min_mb": min(peaks),
                                   "max_mb": max(peaks), "roles_mb_of_median_run": sorted(ms, key=lambda m: m["peak_mb"])[
                                       len(ms) // 2]["roles_mb"]}
    before, after = (report["configs"][n]["median_mb"] for n in CONFIGS)
    report["ratio"] = after / before
    print(f"\nfedray run {' '.join(RUN)}: peak RSS summed over all processes, median of {repeats} "
          f"(load average {load_before:.2f} -> {report['loadavg_after']:.2f})")
    for name, c in report["configs"].items():
        print(f"  {name:<20} {c['median_mb']:>6.0f} MB (min {c['min_mb']:.0f}, max {c['max_mb']:.0f})")
    print(f"  default / 1 actor per client: {report['ratio']:.2f}x")
    return report
