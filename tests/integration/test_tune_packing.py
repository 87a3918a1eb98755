"""A sweep packs clients into actors for the cluster it runs on, not for the machine that submits it."""

from __future__ import annotations

import os

from fedray.tune.runner import _bundles
from fedray.tune.spec import parse_sweep


def test_auto_packing_follows_the_cluster_not_the_submitting_machine():
    cluster_cpus = 4.0 if (os.cpu_count() or 1) >= 8 else 8.0  # anything but this machine's core count
    spec = parse_sweep({"base": {"preset": "tiny", "overrides": {
        "data.num_clients": 16, "train.batch_size": 8, "runtime.clients_per_actor": "auto"}},
        "search_space": {"train.method": {"grid": ["lw"]}}}, "packing.yaml")

    bundles = _bundles(spec, spec.base, {"train.method": "lw"}, {"CPU": cluster_cpus}, 1)

    # The trainable, the server, then one client actor per cluster CPU (16 clients, 2 or 4 per actor).
    assert len(bundles) == 2 + int(cluster_cpus)
