"""The only Ray code outside fedray.tune: sessions, thin actors, the Ray fleet."""

from fedray.backend.fleet import RayFleet, run_on_ray
from fedray.backend.session import ClusterError, client_resources, ray_session

__all__ = ["ClusterError", "RayFleet", "client_resources", "ray_session", "run_on_ray"]
