"""cluster/: the launcher YAML, the KubeRay RayJob and the submit script are valid and name real commands."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
from pathlib import Path

import jsonschema
import yaml

from fedray.cli import build_parser
from fedray.config import load_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def _fedray_config(argv: list[str]):
    """Parse a `fedray ...` command line with the real CLI parser and load the config it names."""
    assert argv[0] == "fedray", argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    return load_config(args.config, args.preset, args.overrides)


def test_launcher_yaml_matches_rays_schema_and_installs_fedray():
    config = yaml.safe_load((CLUSTER / "gpu-cluster.yaml").read_text())
    ray_dir = Path(importlib.util.find_spec("ray").origin).parent  # no `import ray`: nothing starts
    schema = json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text())

    jsonschema.validate(config, schema)  # the cluster launcher's own schema (unknown keys are errors)

    nodes = config["available_node_types"]
    assert config["head_node_type"] in nodes
    gpu = nodes["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] > 0  # autoscaling group
    assert "xlarge" in gpu["node_config"]["InstanceType"]
    setup = " && ".join(config["setup_commands"])
    assert 'pip install "torch==2.13.0"' in setup and "-e ~/fedray" in setup
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert config["file_mounts"]["~/.ray/auth_token"]  # workers get the cluster token


def test_rayjob_manifest_runs_a_real_fedray_command_on_gpu_workers():
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())

    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    cfg = _fedray_config(shlex.split(spec["entrypoint"]))
    assert cfg.runtime.client_gpus == 0.25 and cfg.runtime.server_cpus > 0
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0" and cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"]["mode"] == "token"
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]  # the driver side is CPU only
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] == 0 and workers["maxReplicas"] > workers["minReplicas"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["HF_HUB_OFFLINE"] == "1"


def test_submit_script_uses_job_submit_with_token_auth_and_a_real_command():
    text = (CLUSTER / "submit.sh").read_text()
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("fedray run")]
    argv = [a for a in shlex.split(line) if a != "$@"] + ["--preset", "default"]  # the script's default args

    cfg = _fedray_config(argv)

    assert cfg.runtime.client_gpus == 0.25
    assert "ray job submit" in text and "--working-dir ." in text and "--runtime-env-json" in text
    assert "export RAY_AUTH_MODE=token" in text


def test_submit_script_refuses_to_run_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)

    proc = subprocess.run(["bash", str(CLUSTER / "submit.sh"), "http://127.0.0.1:1"], env=env,
                          capture_output=True, text=True, timeout=30)

    assert proc.returncode == 2
    assert "no Ray auth token" in proc.stderr
