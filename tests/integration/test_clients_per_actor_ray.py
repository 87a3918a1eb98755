"""Many clients per actor on a real local Ray: same global weights as one actor per client and as in-process.

The in-process packings 1, 3 and 4 are compared in tests/unit/test_packing.py; this checks the Ray path
(numpy through the object store, partial sums per actor) on a small population to keep actor start-up short.
"""

from __future__ import annotations

import numpy as np
import torch

from fedray.api import run_experiment


def test_packing_does_not_change_results_on_ray(ray_local, tiny, tmp_path):
    base = ("data.num_clients=3", "runtime.torch_threads=1")
    ray_states = [run_experiment(tiny(*base, f"runtime.clients_per_actor={k}"), str(tmp_path / f"ray{k}"),
                                 progress=lambda _: None).state for k in (1, 3)]
    threads = torch.get_num_threads()
    try:
        local = run_experiment(tiny(*base, "runtime.backend=local"), str(tmp_path / "local"),
                               progress=lambda _: None).state
    finally:
        torch.set_num_threads(threads)
    for name, value in local.items():
        assert np.array_equal(ray_states[0][name], value), name
        assert np.array_equal(ray_states[1][name], value), name
