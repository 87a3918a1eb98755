"""A device trace: CSV or Parquet, local or ``s3://``, one row per client (row i = client i).

Columns (config units): ``memory_mib``, ``gflops``, ``downlink_mbps``, ``uplink_mbps`` (required);
``device`` (a name, default ``trace``), ``availability`` (default 1), ``latency_s`` (default 0) and ``client``
(if present it must read 0, 1, 2, ... so that a reader of the file sees which row is which client) are optional.
Any other column is an error (a misspelt optional column would otherwise fall back to its default silently).
Rows past the population are not used.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fedray.config.schema import ConfigError, StorageConfig
from fedray.data import storage as st

REQUIRED = ("memory_mib", "gflops", "downlink_mbps", "uplink_mbps")
OPTIONAL = {"availability": 1.0, "latency_s": 0.0}
KNOWN = (*REQUIRED, *OPTIONAL, "device", "client")


def _read(uri: str, storage: StorageConfig | None) -> pa.Table:
    """The whole table (traces are small: one row per client)."""
    try:
        if st.is_s3(uri):
            try:
                data = st.filesystem(storage).cat_file(st.strip(uri))
            except Exception as err:  # noqa: BLE001 - botocore/aiohttp raise many types; explain() names them
                raise st.explain(uri, err, storage, what="fleet trace") from None
        elif not Path(uri).is_file():
            raise ConfigError(f"config key 'fleet.trace': {uri}: no such file")
        else:
            data = Path(uri).read_bytes()
        if uri.lower().endswith(".csv"):
            return pacsv.read_csv(io.BytesIO(data))
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ConfigError(f"fleet trace {uri}: not a readable {'CSV' if uri.lower().endswith('.csv') else 'Parquet'} "
                          f"file ({err})") from None


def _numbers(table: pa.Table, name: str, n: int, uri: str) -> np.ndarray:
    col = table.column(name).slice(0, n)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
        raise ConfigError(f"fleet trace {uri}, column '{name}': expected numbers, got {col.type}")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls become NaN


def _first_bad(values: np.ndarray, ok: np.ndarray, name: str, uri: str, rule: str) -> None:
    bad = np.flatnonzero(~ok)
    if bad.size:
        row = int(bad[0])
        shown = "null" if np.isnan(values[row]) else f"{values[row]:g}"
        raise ConfigError(f"fleet trace {uri}, row {row}, column '{name}': {rule}, got {shown}")


def read_trace(uri: str, num_clients: int, storage: StorageConfig | None = None
               ) -> tuple[list[str], dict[str, np.ndarray]]:
    """Client i's device name and profile columns (config units) from row i of the trace; errors name the file,
    row and column. ``fedray.devices.profiles.build_devices`` turns them into :class:`Devices`."""
    table = _read(uri, storage)
    unknown = [c for c in table.column_names if c not in KNOWN]
    if unknown:
        raise ConfigError(f"fleet trace {uri}: unknown column '{unknown[0]}'; known columns: {', '.join(KNOWN)}")
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ConfigError(f"fleet trace {uri}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                          f"required: {', '.join(REQUIRED)}")
    if table.num_rows < num_clients:
        raise ConfigError(f"fleet trace {uri}: {table.num_rows} rows but data.num_clients is {num_clients}; "
                          "it needs one row per client (row i = client i)")
    n = num_clients
    cols = {}
    for name in REQUIRED:
        v = _numbers(table, name, n, uri)
        _first_bad(v, np.isfinite(v) & (v > 0), name, uri, "must be a positive finite number")
        cols[name] = v
    for name, default in OPTIONAL.items():
        v = _numbers(table, name, n, uri) if name in table.column_names else np.full(n, default)
        ok = (v >= 0) & (v <= 1) if name == "availability" else np.isfinite(v) & (v >= 0)
        _first_bad(v, ok, name, uri, "must be in [0, 1]" if name == "availability" else "must be >= 0")
        cols[name] = v
    if "client" in table.column_names:
        ids = _numbers(table, "client", n, uri)
        _first_bad(ids, ids == np.arange(n), "client", uri, "must equal the row number (row i = client i)")
    if "device" in table.column_names:
        names = table.column("device").slice(0, n).to_pylist()
        bad = [i for i, x in enumerate(names) if not isinstance(x, str) or not x]
        if bad:
            raise ConfigError(f"fleet trace {uri}, row {bad[0]}, column 'device': expected a non-empty name, "
                              f"got {names[bad[0]]!r}")
    else:
        names = ["trace"] * n
    return names, cols
