"""Many clients per actor on a real local Ray: same global weights as one actor per client and as in-process.

The in-process packings 1, 3 and 4 are compared in tests/unit/test_packing.py; this checks the Ray path
(numpy through the object store, partial sums per actor) on a small population to keep actor start-up short.
"""

from __future__ import annotations

import numpy as np

from fedray.api import run_experiment


def test_packing_does_not_change_results_on_ray(ray_local, one_thread, tiny, tmp_path):
    base = ("data.num_clients=3", "runtime.torch_threads=1")
    # All three clients in one actor (one per actor, and 2 + 1, run in test_fedavg_reference_ray.py).
    packed = run_experiment(tiny(*base, "runtime.clients_per_actor=3"), str(tmp_path / "ray3"),
                            progress=lambda _: None).state
    local = run_experiment(tiny(*base, "runtime.backend=local"), str(tmp_path / "local"), progress=lambda _: None).state
    assert packed.keys() == local.keys()
    assert [name for name, value in local.items() if not np.array_equal(packed[name], value)] == []
