"""``fedray bench validate``: the driver-side data validation's cost against a run's start-up, default data.

* validation: ``validate_rows`` on every row the default preset reads (clients' and held-out rows), in this
  process, median of ``repeats``;
* start-up: launching ``fedray run --preset default`` (one short round) on the command line until its
  round loop starts the first round: the wall time to the first round's line minus the round's own
  elapsed time printed on it (imports, config, planning with validation, Ray, client actors decoding their
  shards, the server actor), median of ``repeats``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from fedray.bench.common import median, now
from fedray.config import load_config
from fedray.data.validate import validate_rows
from fedray.plan import plan_run

SHORT = ["--set", "train.rounds=[1,0]", "--set", "train.local_epochs=1"]
_ROUND = re.compile(r"round\s+1 \|.*\| ([0-9.]+)s\s*$")


def startup_seconds(preset: str = "default", timeout: float = 600.0) -> float:
    """Seconds from launching ``fedray run --preset PRESET`` to its round loop's start (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="fedray-bench-") as tmp:
        start = now()
        proc = subprocess.Popen([sys.executable, "-m", "fedray.cli", "run", "--preset", preset, *SHORT, "--out",
                                 os.path.join(tmp, "run")], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)
        startup = float("nan")
        assert proc.stderr is not None
        for line in proc.stderr:
            found = _ROUND.search(line)
            if found and startup != startup:
                startup = now() - start - float(found.group(1))
        proc.wait(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"fedray run --preset {preset} failed with exit code {proc.returncode}")
        return startup


def run(repeats: int = 3, preset: str = "default") -> dict[str, Any]:
    """Median validation and start-up seconds and their ratio; prints them with the load."""
    cfg = load_config(preset=preset)
    plan = plan_run(cfg)
    rows = np.concatenate([*plan.client_rows, plan.eval_rows])
    reports = [validate_rows(cfg, plan.info, rows) for _ in range(repeats)]
    validation = median([r.seconds for r in reports])
    startup = median([startup_seconds(preset) for _ in range(repeats)])
    load = os.getloadavg()
    report = {"preset": preset, "rows": reports[0].rows, "checked": reports[0].checked,
              "images_decoded": reports[0].decoded, "validation_s": validation, "startup_s": startup,
              "validation_share": validation / startup, "repeats": repeats, "loadavg_1m": load[0]}
    print(f"validate ({preset}: {report['rows']} rows, columns {report['checked']}, images decoded: "
          f"{report['images_decoded']}): {validation:.3f} s median of {repeats}")
    print(f"start-up (launch -> first round begins): {startup:.1f} s median of {repeats}")
    print(f"validation / start-up: {100 * report['validation_share']:.1f}%   (load average {load[0]:.2f})")
    return report
