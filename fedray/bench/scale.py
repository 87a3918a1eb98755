"""``fedray bench scale``: 1,000 and 10,000 clients on a synthetic image-text set, 50 per round, 10 rounds, local Ray.

Reports wall time per round and the peak summed resident memory of this process and every
process it started (the local Ray's GCS, raylet, workers, the server and client actors).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from fedray.bench.common import MemorySampler, median, now, silent


def synthetic_dataset(root: str, clients: int = 1000, rows_per_client: int = 33, test_rows: int = 256,
                      size: int = 16, seed: int = 0) -> str:
    """A Parquet file in the documented schema (id, split, label, image PNG, text) plus its tokenizer."""
    rng = np.random.default_rng(seed)
    tok_src = resources.files("fedray.data").joinpath("embedded", "emoji", "tokenizer.json")
    vocab = [w for w in json.loads(tok_src.read_text())["model"]["vocab"] if w.isalpha()][:500]
    n = clients * rows_per_client + test_rows
    labels = rng.integers(0, 10, n)
    palette = rng.integers(0, 256, (10, 3), dtype=np.uint8)
    images = []
    for i in range(n):  # a class colour plus noise: cheap to encode, decodes to real PNGs
        img = np.clip(palette[labels[i]] + rng.integers(-40, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        images.append(buf.getvalue())
    words = rng.integers(0, len(vocab), (n, 6))
    texts = [[" ".join(vocab[w] for w in row)] for row in words]
    table = pa.table({
        "id": [f"s{i:06d}" for i in range(n)],
        "split": ["train"] * (n - test_rows) + ["test"] * test_rows,
        "label": labels.astype(np.int64),
        "image": pa.array(images, type=pa.binary()),
        "text": pa.array(texts, type=pa.list_(pa.string())),
    }).replace_schema_metadata({"fedray": json.dumps({"name": "synthetic", "label_names": [str(i) for i in range(10)],
                                                      "modalities": ["image", "text"]})})
    path = Path(root) / "synthetic.parquet"
    pq.write_table(table, path, row_group_size=1024)  # as fedray's converters write: rows are read by row group
    (Path(root) / "tokenizer.json").write_text(tok_src.read_text())
    return str(path)


def run(repeats: int = 1, clients: tuple[int, ...] = (1000, 10000), per_round: int = 50, rounds: int = 10,
        clients_per_actor: str = "auto") -> dict[str, Any]:
    """Per population size: a synthetic set, then ``repeats`` runs (each a fresh local Ray), memory sampled."""
    from fedray.api import run_experiment
    from fedray.config import load_config

    report: dict[str, Any] = {"bench": "scale", "per_round": per_round, "rounds": rounds, "rows_per_client": 33,
                              "clients_per_actor": clients_per_actor, "loadavg_before": os.getloadavg()[0],
                              "populations": {}}
    for n in clients:
        with tempfile.TemporaryDirectory(prefix="fedray-bench-scale-") as tmp:
            start = now()
            source = synthetic_dataset(tmp, n)
            print(f"synthetic dataset: {n} clients x 33 rows in {now() - start:.1f} s", flush=True)
            cfg = load_config(preset="tiny", overrides=[
                f"data.source={source}", f"data.num_clients={n}", f"train.participation={per_round / n}",
                f"train.rounds=[{rounds // 2},{rounds - rounds // 2}]", "data.eval_limit=256", "data.train_limit=null",
                f"runtime.clients_per_actor={clients_per_actor}", "name=bench-scale", f"train.eval_every={rounds}"])
            runs = []
            for i in range(repeats):
                with MemorySampler() as mem:
                    start = now()
                    result = run_experiment(cfg, os.path.join(tmp, f"run{i}"), progress=silent)
                    wall = now() - start
                per = [r["time/round_s"] for r in result.rows]
                runs.append({"wall_s": wall, "round_s": per, "rounds_per_min": 60.0 / median(per),
                             "peak_rss_mb": mem.peak / 2**20, "processes_at_peak": mem.peak_procs})
                print(f"{n} clients, run {i + 1}: {len(per)} rounds, median {median(per):.2f} s/round (min {min(per):.2f},"
                      f" max {max(per):.2f}) = {60.0 / median(per):.1f} rounds/min; whole run {wall:.1f} s incl. Ray "
                      f"start; peak RSS of all processes {mem.peak / 2**20:.0f} MB over {mem.peak_procs} processes",
                      flush=True)
        report["populations"][str(n)] = {
            "runs": runs, "median_round_s": median([median(r["round_s"]) for r in runs]),
            "rounds_per_min": median([r["rounds_per_min"] for r in runs]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in runs])}
    pops = report["populations"]
    if len(pops) > 1:
        (n0, a), (n1, b) = sorted(pops.items(), key=lambda kv: int(kv[0]))[::len(pops) - 1]
        report["memory_growth"] = b["peak_rss_mb"] / a["peak_rss_mb"]
        report["mb_per_extra_client"] = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (int(n1) - int(n0))
        print(f"{n0} -> {n1} clients ({int(n1) / int(n0):g}x): peak memory x{report['memory_growth']:.2f} "
              f"({report['mb_per_extra_client'] * 1024:.0f} KB per extra client of 33 rows)")
    report["loadavg_after"] = os.getloadavg()[0]
    return report
