"""The only Ray code outside fedray.tune: sessions, thin actors, the Ray fleet, the server actor."""

from fedray.backend.fleet import RayFleet
from fedray.backend.server import run_on_ray
from fedray.backend.session import ClusterError, client_resources, cluster_slots, ray_session

__all__ = ["ClusterError", "RayFleet", "client_resources", "cluster_slots", "ray_session", "run_on_ray"]
