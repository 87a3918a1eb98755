"""Statistics read on the driver: cheap per-row features for k-means pseudo-labels, audio mean/std."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image

from fedray.data.dataset import DataError, DatasetInfo, parquet_file, read_columns


def thumbnails(info: DatasetInfo, rows: np.ndarray, side: int = 8) -> np.ndarray:
    """A cheap feature per row for k-means pseudo-labels: ``side``x``side`` image pixels in [0, 1]
    [N, side*side*C], or, without images, the audio features averaged over frames [N, features]."""
    rows = np.asarray(rows, dtype=np.int64)
    if "image" in info.modalities:
        col = read_columns(info, ["image"], rows).column("image").to_pylist()
        out = []
        for data, r in zip(col, rows):
            try:
                img = Image.open(io.BytesIO(data)).convert("RGB").resize((side, side), Image.BILINEAR)
            except Exception as err:  # Pillow raises several unrelated types for bad bytes
                raise DataError(f"dataset file {info.path}, row {r}, column 'image': cannot decode image ({err})") from None
            out.append(np.asarray(img, dtype=np.float32).ravel() / 255.0)
        return np.stack(out)
    if "audio" in info.modalities:
        col = read_columns(info, ["audio"], rows).column("audio").to_pylist()
        return np.stack([np.asarray(a, dtype=np.float32).mean(0) for a in col])
    raise DataError(f"dataset {info.path}: k-means pseudo-labels need an image or audio column")


def audio_stats(info: DatasetInfo, rows: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std of the audio of ``rows`` (pooled over rows and frames), read in batches."""
    total = total_sq = None
    count, offset = 0, 0
    wanted = np.zeros(int(rows.max()) + 1 if len(rows) else 0, dtype=bool)
    wanted[rows] = True
    for batch in parquet_file(info.path, info.storage).iter_batches(columns=["audio"], batch_size=1024):
        keep = wanted[offset:offset + batch.num_rows]
        offset += batch.num_rows
        if not keep.any():
            continue
        col = batch.column(0).filter(pa.array(np.pad(keep, (0, batch.num_rows - len(keep)))))
        a = np.asarray(col.to_pylist(), dtype=np.float64).reshape(-1, info.inputs.features)  # [rows*frames, F]
        total = a.sum(0) if total is None else total + a.sum(0)
        total_sq = (a ** 2).sum(0) if total_sq is None else total_sq + (a ** 2).sum(0)
        count += len(a)
    assert total is not None and total_sq is not None
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0)) + 1e-6
    return tuple(mean.tolist()), tuple(std.tolist())
