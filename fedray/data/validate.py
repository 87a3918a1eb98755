"""Driver-side data validation: every row a run will read is checked before any actor starts.

What is checked, per column the configured towers use, on the clients' rows and the held-out rows:

* ``image``: present and non-empty, a decodable PNG/JPEG, square, the first row's size and channel count
  (grayscale mixed with RGB is an error), at least one patch big. Headers are read for every row (PNG
  vectorised from the Arrow buffers; other formats through Pillow's lazy open, which reads no pixels); the
  pixels themselves are decoded too while the column is small (``decode_bytes``, default 64 MiB: the
  embedded sets decode in well under a second), which also catches damaged pixel data.
* ``text``: a non-empty caption list and a non-empty ``data.caption`` caption in every row; a tokenizer.
* ``audio``: every row ``frames x features``, no nulls, finite values of sane magnitude, and (with the
  metadata's statistics) finite standardised values.
* labels (classification): integers in ``[0, len(label_names))``, no nulls (partition labels are checked
  when the partition reads them).
* Corrupt data pages: each column is read per row group, so a damaged page names its row group and column.

Cost: one read of the needed columns of the needed row groups. For large datasets, a column whose needed
row groups exceed ``read_bytes`` (default 256 MiB compressed) is checked on a seeded sample of row groups up to
that size; the clients check every row they decode, with the same messages plus the client id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from fedray.config import ConfigError, ExperimentConfig
from fedray.data.dataset import DataError, DatasetInfo, check_labels, parquet_file, read_group
from fedray.data.decode import AUDIO_LIMIT, audio_array, captions, check_image_headers, decode_images, row_error

log = logging.getLogger("fedray")
READ_BYTES = 256 << 20
DECODE_BYTES = 64 << 20


@dataclass
class ValidationReport:
    """What was checked: rows per column (all, or a sample of row groups), and how long it took."""

    rows: int = 0
    checked: dict[str, int] = field(default_factory=dict)  # column -> rows checked
    decoded: bool = False  # image pixels decoded (not only headers)
    seconds: float = 0.0


def validate_rows(cfg: ExperimentConfig, info: DatasetInfo, rows: np.ndarray, *, read_bytes: int = READ_BYTES,
                  decode_bytes: int = DECODE_BYTES) -> ValidationReport:
    """Check the dataset rows ``rows`` for the columns ``cfg``'s towers (and task) use; raise a DataError
    naming file, row, id and column, or a ConfigError naming the key, on the first problem."""
    start = time.perf_counter()
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    report = ValidationReport(rows=len(rows))
    _check_shapes_fit(cfg, info)
    columns = [m for m in ("image", "text", "audio") if m in cfg.model.towers]
    if "text" in columns and info.tokenizer is None:
        raise DataError(f"dataset {info.path}: has a text column but no tokenizer.json beside it")
    if cfg.model.task == "classification":
        columns.append("label")
    pf = parquet_file(info.path, info.storage)
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    groups = np.unique(group_of)
    for column in columns:
        size = sum(_column_bytes(pf, int(g), column) for g in groups)
        chosen = groups if size <= read_bytes else _sample(pf, groups, column, read_bytes, cfg.train.seed)
        decode = column == "image" and size <= decode_bytes
        report.decoded |= decode
        for g in chosen:
            mine = rows[group_of == g]
            _check_group(cfg, info, pf, int(g), starts, column, mine, decode)
        report.checked[column] = int(np.isin(group_of, chosen).sum())
        if len(chosen) < len(groups):
            log.info("data: checked column '%s' on %d of %d rows (a sample of row groups); clients check the rest "
                     "as they load them", column, report.checked[column], len(rows))
    report.seconds = time.perf_counter() - start
    return report


def _check_group(cfg: ExperimentConfig, info: DatasetInfo, pf: pq.ParquetFile, group: int, starts: np.ndarray,
                 column: str, rows: np.ndarray, decode: bool) -> None:
    """One column of one row group, restricted to ``rows`` (dataset row indices)."""
    table = read_group(pf, info.path, group, ["id", column], starts)
    local = rows - starts[group]
    col = table.column(column).take(local)
    ids = table.column("id").take(local).to_pylist()
    if column == "image":
        c, s = info.inputs.channels, info.inputs.image_size
        if decode:
            decode_images(col, rows, info.path, c, s, ids)
        else:
            check_image_headers(col, rows, info.path, c, s, ids)
    elif column == "text":
        captions(col, rows, info.path, cfg.data.caption, ids)
    elif column == "audio":
        audio = audio_array(col, rows, info.path, (info.inputs.frames, info.inputs.features), ids)
        if info.audio_norm is not None:  # the metadata's statistics: a tiny std can still blow values up
            mean, std = (np.asarray(v, dtype=np.float32) for v in info.audio_norm)
            z = np.abs((audio - mean) / std)
            bad = np.flatnonzero(~(z <= AUDIO_LIMIT).all(axis=(1, 2)))
            if len(bad):
                i = int(bad[0])
                raise row_error(info.path, int(rows[i]), "audio", "standardised by the metadata's audio_mean/"
                                f"audio_std the values exceed +/-{AUDIO_LIMIT:g}; check those statistics", ids[i])
    elif column == "label":
        labels = check_labels(info, col, rows, "label")
        k = info.inputs.num_classes
        bad = np.flatnonzero(labels >= k)
        if len(bad):
            i = int(bad[0])
            raise row_error(info.path, int(rows[i]), "label", f"label {labels[i]} is not a class index in [0, {k}) "
                            f"(one per label_names entry)", ids[i])


def _check_shapes_fit(cfg: ExperimentConfig, info: DatasetInfo) -> None:
    """Inputs at least one patch big: a 1x1 image set with 4-pixel patches would build a model with no tokens."""
    image = cfg.model.towers.get("image")
    if image is not None and info.inputs.image_size < image.patch_size:
        raise ConfigError(f"config key 'model.towers.image.patch_size': {image.patch_size} is larger than the "
                          f"images of dataset {info.path} ({info.inputs.image_size}x{info.inputs.image_size} px)")
    audio = cfg.model.towers.get("audio")
    if audio is not None and min(info.inputs.frames, info.inputs.features) < audio.patch_size:
        raise ConfigError(f"config key 'model.towers.audio.patch_size': {audio.patch_size} is larger than the audio "
                          f"of dataset {info.path} ({info.inputs.frames} frames x {info.inputs.features} features)")


def _column_bytes(pf: pq.ParquetFile, group: int, column: str) -> int:
    """Compressed bytes of ``column`` (all its leaf columns) in one row group, from the footer."""
    rg = pf.metadata.row_group(group)
    return sum(rg.column(i).total_compressed_size for i in range(rg.num_columns)
               if rg.column(i).path_in_schema.split(".")[0] == column)


def _sample(pf: pq.ParquetFile, groups: np.ndarray, column: str, budget: int, seed: int) -> np.ndarray:
    """A seeded random subset of ``groups`` whose ``column`` fits ``budget`` bytes (at least one group)."""
    order = np.random.default_rng(seed).permutation(groups)
    chosen, total = [], 0
    for g in order:
        size = _column_bytes(pf, int(g), column)
        if chosen and total + size > budget:
            break
        chosen.append(int(g))
        total += size
    return np.sort(np.asarray(chosen))
