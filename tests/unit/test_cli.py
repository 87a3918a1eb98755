"""First contact with the command line: quick answers, hints for common slips, a dry run, a named SIGTERM.

Quickness is checked by what is imported (timings live in ``fedray bench startup``): ``--help``,
``--version`` and every config or ``--out`` error answer before torch, transformers, pyarrow or Ray load.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fedray import __version__
from fedray.cli import main

HEAVY = ("torch", "transformers", "pyarrow", "ray")
ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> tuple[int, str, list[str]]:
    """Run ``fedray ARGV`` in a fresh interpreter: exit code, stderr+stdout, and the heavy modules it imported."""
    code = ("import sys\nfrom fedray.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            f"print('\\nIMPORTED', [m for m in {HEAVY!r} if m in sys.modules])\nsys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    stdout, _, imported = out.stdout.rpartition("\nIMPORTED ")
    return out.returncode, stdout + out.stderr, ast.literal_eval(imported.strip())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["run", "--preset", "nope"],
                                  ["run", "--preset", "tiny", "--set", "train.batch_size=abc"],
                                  ["compare", "missing.yaml"], ["run", "tiny"]])
def test_simple_answers_import_nothing_heavy(argv):
    code, text, imported = cli(*argv)

    assert imported == [], text
    assert code in (0, 2)


def test_a_used_out_dir_is_refused_before_anything_heavy_loads(tmp_path):
    (tmp_path / "old.txt").write_text("an earlier run")

    code, text, imported = cli("run", "--preset", "tiny", "--out", str(tmp_path))

    assert code == 2 and imported == []
    assert f"--out {tmp_path}: exists and is not empty; fedray never overwrites an earlier run; choose a new --out" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"fedray {__version__}\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "tiny"], "config file tiny: not found; 'tiny' is a packaged preset: use --preset tiny"),
    (["run", "--preset", "tiny", "--set", "train.method", "lw"],
     "--set train.method lw: expected KEY=VALUE; did you mean --set train.method=lw?"),
    (["run", "--set", "train.method"], "override 'train.method': expected KEY=VALUE, e.g. train.method=lw"),
    (["run", "--resume", "runs/x", "--dry-run"], "--dry-run plans a new run; it does not combine with --resume"),
])
def test_common_slips_get_a_hint(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err == f"fedray: error: {message}\n"


def test_a_used_out_dir_holding_an_interrupted_run_points_at_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")  # an interrupted run: a checkpoint and no summary.json

    assert main(["run", "--preset", "tiny", "--out", str(tmp_path)]) == 2

    assert f"it holds an interrupted run: continue it with `fedray run --resume {tmp_path}`" in capsys.readouterr().err


def test_dry_run_prints_config_and_plan_and_starts_nothing(tmp_path):
    code, text, imported = cli("run", "--dry-run", "--preset", "tiny", "--set", "train.method=prog",
                               "--out", str(tmp_path / "never"))

    assert code == 0, text
    assert "ray" not in imported  # no Ray started, not even imported
    assert not (tmp_path / "never").exists()
    assert "# resolved config\nname: tiny\n" in text and "method: prog" in text
    assert "clients: 2 (iid), 128..128 rows each; cohort 2 per round" in text
    assert "hosts: 2 client actor(s) of 1 client(s) + 1 server actor on Ray" in text
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2  # one row per stage, each with its rounds, bytes per round and modelled memory
    cells = [r.strip("|").split("|") for r in rows]
    assert [c[1].strip() for c in cells] == ["1", "1"]
    assert all(float(c[4]) > 0 and float(c[6]) > 0 for c in cells)
    assert "total: 2 rounds" in text


def test_sigterm_leaves_a_failed_file_that_names_it(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedray.cli", "run", "--preset", "tiny", "--set", "runtime.backend=local",
         "--set", "train.rounds=[50,50]", "--set", "runtime.torch_threads=1", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # an event: the first round is done, so the run is under way
            if "round   1/100" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)  # a safety bound only
    finally:
        proc.kill()

    assert proc.returncode == 128 + signal.SIGTERM, err
    assert (out / "FAILED").read_text() == "Interrupted: terminated by SIGTERM\n"
    assert "fedray: terminated by SIGTERM" in err and "Traceback" not in err
    assert not (out / "summary.json").exists()
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["round"] == 1


def test_sigterm_handler_is_scoped_and_survives_ray_init_style_replacement():
    from fedray.interrupt import Interrupted, kept_sigterm, sigterm_raises

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_raises():
        with kept_sigterm():
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what ray.init installs on the driver
        with pytest.raises(Interrupted, match="terminated by SIGTERM") as err:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
        assert err.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_sigterm_that_a_library_reraises_as_ctrl_c_keeps_its_name_and_exit_code():
    # Ray runs Python's signal handlers inside its blocking C++ waits and re-raises what they raised as a plain
    # KeyboardInterrupt; the CLI and the run directory must still say SIGTERM (exit 143), not Ctrl-C (130).
    from fedray.interrupt import Interrupted, named, sigterm_raises

    with sigterm_raises():
        with pytest.raises(KeyboardInterrupt) as err:
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Interrupted before the next line
            except KeyboardInterrupt:
                raise KeyboardInterrupt() from None  # what Ray does with it
        assert type(err.value) is KeyboardInterrupt
        cause = named(err.value)
        assert isinstance(cause, Interrupted) and cause.exit_code == 143 and str(cause) == "terminated by SIGTERM"
    with sigterm_raises():  # a new command: a Ctrl-C is a Ctrl-C
        ctrl_c = KeyboardInterrupt()
        assert named(ctrl_c) is ctrl_c
