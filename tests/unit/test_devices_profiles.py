"""Which client gets which device: seeded class assignment, traces (CSV/Parquet), the partition.json report."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedray.config import ConfigError
from fedray.config.loader import build
from fedray.devices import assign_classes, build_devices, largest_remainder

CLASSES = {"a": {"share": 0.25, "memory_mib": 8, "gflops": 1, "downlink_mbps": 8, "uplink_mbps": 4},
           "b": {"share": 0.5, "memory_mib": 16, "gflops": 2, "downlink_mbps": 16, "uplink_mbps": 8},
           "c": {"share": 0.25, "memory_mib": 32, "gflops": 4, "downlink_mbps": 32, "uplink_mbps": 16,
                 "availability": 0.5, "latency_s": 0.1}}


def test_largest_remainder_counts_by_hand():
    # quotas 1.75, 3.5, 1.75: floors 1, 3, 1; the two largest remainders (0.75, 0.75) get one more each
    assert largest_remainder([0.25, 0.5, 0.25], 7) == [2, 3, 2]
    assert largest_remainder([0.5, 0.5], 3) == [2, 1]  # a tie goes to the earlier class
    assert largest_remainder([1 / 3] * 3, 10) == [4, 3, 3]
    assert sum(largest_remainder([0.1, 0.2, 0.3, 0.4], 1001)) == 1001


def test_assignment_is_seeded_and_has_exact_counts():
    first = assign_classes([0.25, 0.5, 0.25], 40, seed=42)
    assert np.array_equal(first, assign_classes([0.25, 0.5, 0.25], 40, seed=42))
    assert not np.array_equal(first, assign_classes([0.25, 0.5, 0.25], 40, seed=7))
    assert np.bincount(first).tolist() == [10, 20, 10]


def test_classes_become_si_units_and_a_json_report():
    cfg = build({"fleet": {"classes": CLASSES}})
    devices = build_devices(cfg.fleet, 8, seed=42)
    report = json.loads(json.dumps(devices.report()))  # JSON-ready
    assert report["source"] == "classes" and report["counts"] == {"a": 2, "b": 4, "c": 2}
    c = devices.device.index("c")
    assert devices.memory_bytes[c] == 32 * 2**20
    assert devices.flops_per_s[c] == 4e9
    assert devices.down_bytes_per_s[c] == 32e6 / 8 and devices.up_bytes_per_s[c] == 16e6 / 8
    assert devices.availability[c] == 0.5 and devices.latency_s[c] == 0.1
    assert report["clients"][c] == {"client": c, "device": "c", "memory_mib": 32.0, "gflops": 4.0,
                                    "downlink_mbps": 32.0, "uplink_mbps": 16.0, "availability": 0.5, "latency_s": 0.1}


def test_a_preset_is_assigned_like_classes():
    cfg = build({"fleet": {"preset": "constrained"}})
    devices = build_devices(cfg.fleet, 8, seed=42)
    assert devices.source == "preset constrained"
    assert devices.report()["counts"] == {"large": 2, "micro": 2, "small": 4}


def _trace(tmp_path, fmt: str, **columns) -> str:
    table = pa.table(columns)
    path = tmp_path / f"trace.{fmt}"
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return str(path)


ROWS = {"memory_mib": [8.0, 16.0, 32.0, 64.0], "gflops": [1.0, 2.0, 3.0, 4.0],
        "downlink_mbps": [1.0, 2.0, 3.0, 4.0], "uplink_mbps": [0.5, 1.0, 1.5, 2.0]}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_trace_row_i_is_client_i_with_defaults(tmp_path, fmt):
    path = _trace(tmp_path, fmt, **ROWS, device=["x", "y", "x", "z"])
    cfg = build({"fleet": {"trace": path}})
    devices = build_devices(cfg.fleet, 3, seed=42)  # rows past the population are not used
    assert devices.device == ("x", "y", "x")
    assert devices.memory_bytes.tolist() == [8 * 2**20, 16 * 2**20, 32 * 2**20]
    assert devices.flops_per_s.tolist() == [1e9, 2e9, 3e9]
    assert devices.availability.tolist() == [1.0, 1.0, 1.0] and devices.latency_s.tolist() == [0.0, 0.0, 0.0]
    assert devices.source == f"trace {path}"


@pytest.mark.parametrize(("columns", "clients", "message"), [
    ({k: v for k, v in ROWS.items() if k != "gflops"}, 4, "missing column(s) 'gflops'; required:"),
    (ROWS, 5, "4 rows but data.num_clients is 5; it needs one row per client"),
    ({**ROWS, "gflops": [1.0, -2.0, 3.0, 4.0]}, 4, "row 1, column 'gflops': must be a positive finite number, got -2"),
    ({**ROWS, "uplink_mbps": [0.5, 1.0, 0.0, 2.0]}, 4, "row 2, column 'uplink_mbps': must be a positive finite number, got 0"),
    ({**ROWS, "memory_mib": [8.0, None, 32.0, 64.0]}, 4, "row 1, column 'memory_mib': must be a positive finite number, got null"),
    ({**ROWS, "availability": [1.0, 1.0, 1.0, 1.2]}, 4, "row 3, column 'availability': must be in [0, 1], got 1.2"),
    ({**ROWS, "availabilty": [0.5] * 4}, 4, "unknown column 'availabilty'; known columns:"),
    ({**ROWS, "client": [0, 1, 3, 2]}, 4, "row 2, column 'client': must equal the row number"),
    ({**ROWS, "gflops": ["a", "b", "c", "d"]}, 4, "column 'gflops': expected numbers, got string"),
])
def test_bad_traces_name_file_row_and_column(tmp_path, columns, clients, message):
    path = _trace(tmp_path, "parquet", **columns)
    cfg = build({"fleet": {"trace": path}})
    with pytest.raises(ConfigError) as err:
        build_devices(cfg.fleet, clients, seed=42)
    assert f"fleet trace {path}" in str(err.value) and message in str(err.value)


def test_missing_or_unreadable_trace_files(tmp_path):
    with pytest.raises(ConfigError, match="config key 'fleet.trace': .*nope.csv: no such file"):
        build_devices(build({"fleet": {"trace": str(tmp_path / "nope.csv")}}).fleet, 2, seed=42)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ConfigError, match=r"fleet trace .*bad.parquet: not a readable Parquet file"):
        build_devices(build({"fleet": {"trace": str(bad)}}).fleet, 2, seed=42)
