"""Packing clients into hosts (client actors): largest shard first, balancing rows per host. No Ray, no torch.

Which host a client lands on never changes results: a host trains its clients one after
another from the same global tensors and sums their updates in float64 in client-id order.
"""

from __future__ import annotations

import heapq
import math


def auto_clients_per_actor(num_clients: int, cpus: float, gpus: float = 0.0, client_gpus: float = 0.0) -> int:
    """One host per whole CPU (or per ``client_gpus`` share of the GPUs), never more hosts than clients."""
    slots = max(1, math.floor(cpus))
    if client_gpus > 0 and gpus > 0:
        slots = max(1, math.floor(gpus / client_gpus + 1e-9))
    return math.ceil(num_clients / min(num_clients, slots))


def resolve_clients_per_actor(value: int | str, num_clients: int, cpus: float, gpus: float = 0.0,
                              client_gpus: float = 0.0) -> int:
    """``runtime.clients_per_actor`` as a number (``auto`` resolved against the given resources)."""
    if value == "auto":
        return auto_clients_per_actor(num_clients, cpus, gpus, client_gpus)
    return min(int(value), max(1, num_clients))


def pack_clients(sizes: list[int], per_host: int) -> tuple[tuple[int, ...], ...]:
    """Client ids per host: ceil(n / per_host) hosts of at most ``per_host`` clients each.

    Clients go largest shard first (ties: lower id) to the host with the fewest rows so far
    (ties: lower host index) that still has room; each host lists its clients in ascending id,
    the order in which it trains and sums them.
    """
    n = len(sizes)
    if n == 0:
        return ()
    if per_host <= 1:
        return tuple((c,) for c in range(n))
    num_hosts = math.ceil(n / per_host)
    heap = [(0, h) for h in range(num_hosts)]  # (rows so far, host index); full hosts leave the heap
    members: list[list[int]] = [[] for _ in range(num_hosts)]
    for c in sorted(range(n), key=lambda c: (-sizes[c], c)):
        rows, h = heapq.heappop(heap)
        members[h].append(c)
        if len(members[h]) < per_host:
            heapq.heappush(heap, (rows + sizes[c], h))
    return tuple(tuple(sorted(m)) for m in members)
