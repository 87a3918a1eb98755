"""Shared fixtures. Keeps Ray, Hugging Face and HOME inside the test session (no outside traffic)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports Ray: a private HOME with ray_bootstrap_config.yaml stops Ray's
# cloud-metadata probes; usage stats off; transformers never contacts a hub.
_HOME = Path(tempfile.mkdtemp(prefix="fedray-test-home-"))
(_HOME / "ray_bootstrap_config.yaml").write_text("{}\n")
os.environ["HOME"] = str(_HOME)
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("RAY_ADDRESS", None)

_ORDER = {"unit": 0, "integration": 1, "gpu": 2}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first (no Ray, seconds each: a broken change fails fast), then integration, then gpu.
    The sort is stable, so each file keeps its order and its module fixtures stay together."""
    root = Path(__file__).resolve().parent
    items.sort(key=lambda item: _ORDER.get(item.path.resolve().relative_to(root).parts[0], 1)
               if item.path.resolve().is_relative_to(root) else 1)


@pytest.fixture(scope="session")
def ray_local():
    """One private local Ray (2 CPUs) for the whole session; shut down only because we started it."""
    import ray

    from fedray.backend.session import start_private  # on loopback only, as fedray's own private Ray

    start_private(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny():
    """The tiny preset as a config, with optional overrides: ``tiny("train.method=prog")``."""
    from fedray.config import load_config

    def make(*overrides: str):
        return load_config(preset="tiny", overrides=list(overrides))

    return make


@pytest.fixture
def one_thread():
    """Restores torch's thread count after a test whose client hosts set it (threads=1)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def in_process_server(one_thread):
    """``build(cfg)`` -> (in-process fleet of one-thread hosts, round context, evaluator, initial state)."""
    from fedray.client import ClientHost
    from fedray.plan import plan_run
    from fedray.server import InProcessFleet, build_server

    def build(cfg):
        plan = plan_run(cfg)
        hosts = [ClientHost(cfg, plan.info, plan.host_rows(h), threads=1) for h in range(len(plan.hosts))]
        return (InProcessFleet(hosts), *build_server(plan))

    return build
