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
