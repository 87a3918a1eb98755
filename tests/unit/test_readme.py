"""The README's two set-up commands stay true: CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_a_run_command_and_a_test_command():
    run, test = readme_commands()[:2]
    assert "pip install" in run and "fedray compare --preset pretrained" in run
    assert "pip install" in test and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    test = readme_commands()[1]
    assert test in (ROOT / ".ci" / "run").read_text()


def _readme_table_header() -> str:
    after = (ROOT / "README.md").read_text().split("What that prints", 1)[1]
    return next(line for line in after.splitlines() if line.startswith("| method |"))


def test_the_printed_comparison_has_the_readme_headers_and_its_legend():
    from fedray.api import RunResult
    from fedray.compare import LEGEND, comparison_rows, to_text

    summary = {"metrics": {k: 0.1 for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")},
               "wall_time_s": 1.0, "resources": {"comm_bytes": 1e6, "flops": 1e9, "peak_memory_bytes": 2**20}}
    printed = to_text(comparison_rows({m: RunResult("", summary, [], {}) for m in ("fedmml", "lw", "prog")}))

    assert printed.splitlines()[0] == _readme_table_header()
    readme = (ROOT / "README.md").read_text()
    for line in LEGEND:  # one legend: the same words under the printed table and under the README's
        assert line in printed and line in readme
    assert "train mem MiB (modelled)" in _readme_table_header() and "peak MB" not in readme


def test_the_running_examples_load(tmp_path, monkeypatch):
    """Every `fedray run` / `compare` line of the README's Running section parses and its config loads
    (with my_experiment.yaml as the README shows it); no compute."""
    from fedray.cli import _config, build_parser

    section = (ROOT / "README.md").read_text().split("\n## Running\n", 1)[1].split("\n## ", 1)[0]
    commands, experiment = re.findall(r"```(?:bash|yaml)\n(.+?)\n```", section, flags=re.S)[:2]
    (tmp_path / "my_experiment.yaml").write_text(experiment + "\n")
    monkeypatch.chdir(tmp_path)
    lines = [line.split("#")[0].split()[1:] for line in commands.splitlines() if line.startswith("fedray ")]

    configs = [_config(build_parser().parse_args(argv)) for argv in lines]

    assert len(configs) == 5
    assert configs[4].train.strategy.name == "fedadam"
    assert configs[2].train.method == "prog" and configs[2].train.rounds == [2, 4] and configs[2].data.num_clients == 4
