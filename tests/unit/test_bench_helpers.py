"""Benchmark helpers (the benchmarks themselves are commands, not tests): memory sampling, synthetic data."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fedray.bench.common import MemorySampler, process_tree, rss_bytes
from fedray.bench.scale import synthetic_dataset
from fedray.cli import build_parser
from fedray.plan import plan_run


def test_memory_sampler_counts_child_processes():
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        deadline = time.time() + 20
        while rss_bytes(child.pid) < 150 * 2**20 and time.time() < deadline:
            time.sleep(0.1)
        assert child.pid in process_tree(os.getpid())
        with MemorySampler() as mem:
            pass
        assert mem.peak >= 200 * 2**20  # this process plus the child holding 200 MB
        assert mem.peak_procs >= 2
    finally:
        child.kill()
        child.wait()


def test_synthetic_dataset_follows_the_schema(tmp_path, tiny):
    source = synthetic_dataset(str(tmp_path), clients=12, test_rows=40)
    plan = plan_run(tiny(f"data.source={source}", "data.num_clients=12", "data.train_limit=null",
                         "runtime.clients_per_actor=5"))
    assert plan.info.modalities == ("image", "text") and plan.info.inputs.image_size == 16
    assert [len(h) for h in plan.hosts] == [4, 4, 4] and all(len(r) == 33 for r in plan.client_rows)
    args = build_parser().parse_args(["bench", "scale", "--json", "x.json", "--repeats", "2"])
    assert (args.name, args.json_out, args.repeats) == ("scale", "x.json", 2)
