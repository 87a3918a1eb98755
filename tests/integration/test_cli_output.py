"""What `fedray run` on a private local Ray shows and leaves: fedray's lines only (no Ray notices), where to
watch it (dashboard with token access, Prometheus metrics tagged with the run's id), and a SIGTERM that the
run directory names."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAFETY_S = 900  # bounds that only stop a hung test; events decide every outcome


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_a_local_run_is_quiet_says_where_to_watch_it_and_names_a_sigterm(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--set", "train.rounds=[300,300]",
         "--set", "runtime.torch_threads=1", "--set", "runtime.dashboard=true", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # until the first round: everything printed at start-up
            lines.append(line.rstrip("\n"))
            if "round   1/600" in line:
                break
        head = "\n".join(lines)
        dashboard = re.search(r"^Ray dashboard: (http://127\.0\.0\.1:\d+) \(token authentication: its API wants "
                              r"the header 'Authorization: Bearer <the token in ~/\.ray/auth_token>'\)$", head, re.M)
        metrics = re.search(r"^metrics \(Prometheus text\): (http://127\.0\.0\.1:\d+/metrics)$", head, re.M)
        assert dashboard and metrics, head
        assert lines[-1].startswith("[lw] stage 1 round   1/600 | loss "), head
        assert len(lines) == 3, head  # nothing else: no token-auth notice, no Ray INFO lines, no actor output

        # The dashboard API wants the token Ray keeps in ~/.ray/auth_token (as the README says).
        token = (Path(os.environ["HOME"]) / ".ray" / "auth_token").read_text().strip()
        assert _get(f"{dashboard.group(1)}/api/version")[0] == 401
        assert _get(f"{dashboard.group(1)}/api/version", token)[0] == 200

        # Metrics carry the run's unique id: its Ray namespace, as written to ray.json.
        run_id = json.loads((out / "ray.json").read_text())["namespace"]
        deadline = time.monotonic() + SAFETY_S
        while not re.search(rf'^ray_fedray_rounds_total\{{.*run_id="{run_id}"', _get(metrics.group(1))[1], re.M):
            assert proc.poll() is None and time.monotonic() < deadline, "no fedray metrics while the run ran"
            time.sleep(1)

        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=SAFETY_S)
    finally:
        proc.kill()

    assert proc.returncode == 128 + signal.SIGTERM, rest[-3000:]
    assert (out / "FAILED").read_text() == "Interrupted: terminated by SIGTERM\n"
    assert "Traceback" not in rest and "Mutex" not in rest
