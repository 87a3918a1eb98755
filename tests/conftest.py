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
