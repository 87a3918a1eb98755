"""The only Ray code outside fedray.tune: sessions, thin actors, the Ray fleet, the server actor.

Names are imported on first use, so ``fedray.backend.session`` does not pull in torch and the fleet.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedray.backend.fleet import RayFleet
    from fedray.backend.server import run_on_ray
    from fedray.backend.session import ClusterError, client_resources, cluster_slots, ray_session

_HOME = {"RayFleet": "fleet", "run_on_ray": "server", "ClusterError": "session", "client_resources": "session",
         "cluster_slots": "session", "ray_session": "session"}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(f"fedray.backend.{_HOME[name]}"), name)
    raise AttributeError(f"module 'fedray.backend' has no attribute {name!r}")
