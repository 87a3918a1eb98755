"""A real cluster: `ray start --head` with token auth, `ray job submit` of the tiny run, fedray's metrics
on the Prometheus export port, and a clear error for a client without the cluster's token.

The cluster gets its own temp dir, HOME, token and free ports, and is stopped by killing exactly the
processes that carry its temp dir (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _home(root: Path, token: str | None) -> Path:
    """A HOME with ray_bootstrap_config.yaml (no cloud-metadata probes) and, optionally, a Ray token."""
    root.mkdir()
    (root / "ray_bootstrap_config.yaml").write_text("{}\n")
    if token is not None:
        (root / ".ray").mkdir()
        (root / ".ray" / "auth_token").write_text(token)
    return root


def _processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} from /proc (Linux)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out[int(d.name)] = (ppid, cmd)
    return out


def _stop(temp_dir: str) -> None:
    """Terminate the processes of the cluster living in ``temp_dir`` (and their children), by PID."""
    procs = _processes()
    ours = {pid for pid, (_, cmd) in procs.items() if temp_dir in cmd}
    grew = True
    while grew:  # add workers and agents: children of the raylet
        more = {pid for pid, (ppid, _) in procs.items() if ppid in ours} - ours
        ours |= more
        grew = bool(more)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        for pid in ours:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in ours):
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="frjob-"))  # short: Ray's unix socket paths live under it
    token = secrets.token_hex(32)
    ports = {k: _free_port() for k in ("gcs", "dashboard", "metrics", "client", "agent")}
    env = {**os.environ, "HOME": str(_home(root / "home", token)), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = str(root / "ray")
    start = subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(ports["gcs"]),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(ports["dashboard"]),
         "--metrics-export-port", str(ports["metrics"]), "--ray-client-server-port", str(ports["client"]),
         "--dashboard-agent-listen-port", str(ports["agent"]), "--num-cpus", "2", "--temp-dir", temp_dir,
         "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=900)
    try:
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield {"root": root, "env": env, "token": token, "ports": ports}
    finally:
        _stop(temp_dir)


def _scrape(port: int) -> dict[tuple[str, str], float]:
    """fedray's series on the Prometheus export: {(name, labels): value}."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(ray_fedray_\w+)\{(.*)\} (\S+)$", line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def _value(series: dict, name: str, **labels: str) -> float | None:
    for (n, tags), v in series.items():
        if n == name and all(f'{k}="{val}"' in tags for k, val in labels.items()):
            return v
    return None


def test_job_submit_runs_tiny_and_exports_metrics(cluster, tmp_path):
    out = tmp_path / "run"
    runtime_env = {"excludes": [".venv/", "runs/", ".git", "**/__pycache__/", ".pytest_cache/"],
                   "env_vars": {"HF_HUB_OFFLINE": "1"}}
    t0 = time.monotonic()
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", f"http://127.0.0.1:{cluster['ports']['dashboard']}", "--no-wait",
         "--working-dir", str(REPO), "--runtime-env-json", json.dumps(runtime_env), "--",
         sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--set", "runtime.torch_threads=1",
         "--out", str(out)], env=cluster["env"], capture_output=True, text=True, timeout=900)
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]
    job_id = re.search(r"raysubmit_\w+", submit.stdout + submit.stderr).group(0)

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(f"http://127.0.0.1:{cluster['ports']['dashboard']}",
                                 headers={"Authorization": f"Bearer {cluster['token']}"})
    seen: dict = {}
    status = None
    while time.monotonic() - t0 < 1800:  # a safety bound: the job's status decides
        seen.update(_scrape(cluster["ports"]["metrics"]))  # gauges of a finished run expire: collect while it runs
        status = client.get_job_status(job_id)
        if status.is_terminal():
            break
        time.sleep(1)
    elapsed = time.monotonic() - t0
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job_id)[-3000:]
    print(f"\njob submit -> SUCCEEDED in {elapsed:.1f}s")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["method"] == "lw"
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "model.safetensors", "ray.json"} <= {p.name for p in out.iterdir()}

    deadline = time.monotonic() + 600  # counters reach the export on Ray's report interval
    while time.monotonic() < deadline:
        seen.update(_scrape(cluster["ports"]["metrics"]))
        if _value(seen, "ray_fedray_local_train_seconds_count", run="tiny") == 4:
            break
        time.sleep(1)
    tags = {"run": "tiny", "method": "lw"}
    assert _value(seen, "ray_fedray_rounds_total", **tags) == 2
    assert _value(seen, "ray_fedray_local_train_seconds_count", **tags) == 4  # 2 clients x 2 rounds
    assert 0 < _value(seen, "ray_fedray_local_train_seconds_sum", **tags) <= 4 * elapsed  # seconds, not ms
    run_id = json.loads((out / "ray.json").read_text())["namespace"]  # unique per run, unlike run="tiny"
    assert _value(seen, "ray_fedray_rounds_total", run_id=run_id, **tags) == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert _value(seen, "ray_fedray_bytes_sent_total", **tags) == sum(r["comm/bytes_to_clients"] for r in rows)
    assert _value(seen, "ray_fedray_bytes_received_total", **tags) == sum(r["comm/bytes_from_clients"] for r in rows)
    assert _value(seen, "ray_fedray_stage", **tags) in (1, 2)
    assert _value(seen, "ray_fedray_round", **tags) in (1, 2)
    assert _value(seen, "ray_fedray_cohort_clients", **tags) == 2
    assert _value(seen, "ray_fedray_completed_clients", **tags) == 2
    assert 0 <= _value(seen, "ray_fedray_eval_metric", metric="eval/i2t_r1", **tags) <= 1
    assert not _value(seen, "ray_fedray_client_failures_total", **tags)


def test_join_without_the_token_is_an_auth_error(cluster, tmp_path):
    env = {**cluster["env"], "HOME": str(_home(tmp_path / "home", None)), "RAY_gcs_server_port_wait_time_s": "2"}
    env.pop("RAY_AUTH_MODE")
    out = tmp_path / "run"

    proc = subprocess.run(
        [sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--out", str(out),
         "--address", f"127.0.0.1:{cluster['ports']['gcs']}"], env=env, capture_output=True, text=True, timeout=900)

    assert proc.returncode == 2
    assert f"--address=127.0.0.1:{cluster['ports']['gcs']}: the cluster rejected fedray's authentication token" \
        in proc.stderr
    assert "RAY_AUTH_MODE=token" in proc.stderr
    assert cluster["token"] not in proc.stderr + proc.stdout
    assert not out.exists()  # nothing half-written
