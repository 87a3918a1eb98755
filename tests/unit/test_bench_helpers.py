"""Benchmark helpers (the benchmarks themselves are commands, not tests): memory sampling, synthetic data."""

from __future__ import annotations

import os
import subprocess
import sys

from fedray.bench.common import MemorySampler, process_tree, rss_bytes
from fedray.bench.scale import synthetic_dataset
from fedray.cli import build_parser
from fedray.plan import plan_run


def test_memory_sampler_counts_child_processes():
    # The child holds 200 MB (every page written) until its stdin closes, and says when it has them.
    code = "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); " \
           "sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        assert rss_bytes(child.pid) >= 200 * 2**20
        assert child.pid in process_tree(os.getpid())
        with MemorySampler() as mem:
            pass
        assert mem.peak >= 200 * 2**20  # this process plus the child holding 200 MB
        assert mem.peak_procs >= 2
    finally:
        child.kill()
        child.communicate()


def test_synthetic_dataset_follows_the_schema(tmp_path, tiny):
    source = synthetic_dataset(str(tmp_path), clients=12, test_rows=40)
    plan = plan_run(tiny(f"data.source={source}", "data.num_clients=12", "data.train_limit=null",
                         "runtime.clients_per_actor=5"))
    assert plan.info.modalities == ("image", "text") and plan.info.inputs.image_size == 16
    assert [len(h) for h in plan.hosts] == [4, 4, 4] and all(len(r) == 33 for r in plan.client_rows)
    args = build_parser().parse_args(["bench", "scale", "--json", "x.json", "--repeats", "2"])
    assert (args.name, args.json_out, args.repeats) == ("scale", "x.json", 2)
