"""Client side: ClientHost holds shards and the frozen prefix and runs local training. No Ray."""

from fedray.client.host import (
    ClientHost,
    ClientStats,
    FrozenValues,
    HostResult,
    RoundTask,
    client_seed,
    load_state,
    to_numpy,
)

__all__ = ["ClientHost", "ClientStats", "FrozenValues", "HostResult", "RoundTask", "client_seed", "load_state",
           "to_numpy"]
