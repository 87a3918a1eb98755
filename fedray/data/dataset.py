"""Parquet datasets: metadata on the driver, decoded rows on the clients.

Schema (one row per item; see README "Dataset format"):
``id`` string, ``split`` string (train/test), ``label`` int64 (optional), ``image`` binary (PNG/JPEG),
``text`` list<string> (captions, first is the main one), ``audio`` list<list<float32>> (frames x features).
Schema metadata ``fedray`` holds JSON with ``name``, ``label_names`` and ``modalities``.

The driver reads only the ``split`` and label columns (to partition); each client decodes only
its own rows, once, and keeps them in memory as tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fedray.config.schema import StorageConfig
from fedray.data import storage as st
from fedray.data.decode import DataError, audio_array, captions, column_array, decode_image, decode_images, row_error
from fedray.model import InputSpec

EMBEDDED = ("emoji", "avdigits", "openclipart")
# Captions are cut to this many characters per token of max_length before tokenising: a token spans at least
# one character, so nothing that could be kept is lost, and a 200,000-character caption costs no second.
CHARS_PER_TOKEN = 32

__all__ = ["DataError", "DatasetInfo", "Shard", "load_client_shards", "load_rows", "open_dataset", "split_rows"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the driver knows about a dataset without decoding it."""

    path: str
    name: str
    modalities: tuple[str, ...]
    label_names: tuple[str, ...]
    tokenizer: str | None
    inputs: InputSpec
    # Per-feature audio (mean, std) from the training rows only; every party standardises with the same values.
    audio_norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    has_labels: bool = False  # a 'label' column exists
    storage: StorageConfig | None = field(default=None, repr=False)  # resolved s3 settings for s3:// paths


def resolve_source(source: str, storage: StorageConfig | None = None) -> tuple[str, str | None]:
    """Parquet path and tokenizer path (``tokenizer.json`` beside the file) of an embedded name, path or s3:// URI."""
    if source in EMBEDDED:
        root = resources.files("fedray.data").joinpath("embedded", source)
        return str(root.joinpath(f"{source}.parquet")), str(root.joinpath("tokenizer.json"))
    if st.is_s3(source):
        tok = source.rsplit("/", 1)[0] + "/tokenizer.json"
        try:
            return source, (tok if st.filesystem(storage).exists(st.strip(tok)) else None)
        except Exception as err:  # botocore/aiohttp raise many types; explain() names bucket and endpoint
            raise st.explain(source, err, storage) from None
    tok = Path(source).with_name("tokenizer.json")
    return source, (str(tok) if tok.is_file() else None)


def parquet_file(path: str, storage: StorageConfig | None = None) -> pq.ParquetFile:
    """Open a local or s3:// Parquet file (footer only), with errors that name the file."""
    if st.is_s3(path):
        fs = st.filesystem(storage)
        try:
            return pq.ParquetFile(fs.open(st.strip(path), "rb"))
        except pa.ArrowInvalid as err:
            raise DataError(f"dataset file {path}: not a readable Parquet file ({err})") from None
        except Exception as err:  # noqa: BLE001 - mapped to a StorageError naming bucket and endpoint
            raise st.explain(path, err, storage) from None
    if not Path(path).is_file():
        raise DataError(f"dataset {path!r}: no Parquet file there; embedded sets are {', '.join(EMBEDDED)}")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"dataset file {path}: not a readable Parquet file ({err})") from None


def read_columns(info: DatasetInfo, columns: list[str], rows: np.ndarray | None = None) -> pa.Table:
    """Columns of the whole file, or of ``rows`` only (reading just the row groups that hold them).

    A row group that cannot be read (a corrupt data page) is named with its rows and columns.
    """
    pf = parquet_file(info.path, info.storage)
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    groups = range(pf.num_row_groups) if rows is None else sorted(set(np.searchsorted(starts, rows, side="right") - 1))
    tables = [read_group(pf, info.path, int(g), columns, starts) for g in groups]
    table = pa.concat_tables(tables) if tables else pf.schema_arrow.empty_table().select(columns)
    if rows is None:
        return table
    local = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups]) if groups else np.zeros(0, int)
    return table.take(pa.array(np.searchsorted(local, rows), type=pa.int64()))


def read_group(pf: pq.ParquetFile, path: str, group: int, columns: list[str], starts: np.ndarray) -> pa.Table:
    """One row group's columns; a corrupt page is a DataError naming the row group, its rows and the columns."""
    try:
        return pf.read_row_group(group, columns=columns)
    except (pa.ArrowException, OSError) as err:
        cols = ", ".join(repr(c) for c in columns)
        raise DataError(f"dataset file {path}, row group {group} (rows {starts[group]}..{starts[group + 1] - 1}), "
                        f"column {cols}: cannot read it, the file is damaged ({err})", column=columns[0]) from None


def open_dataset(source: str, storage: StorageConfig | None = None) -> DatasetInfo:
    """Read a dataset's schema and metadata, plus the first image/audio row for shapes (no other rows)."""
    storage = st.resolve(storage) if st.is_s3(source) else None
    path, tokenizer = resolve_source(source, storage)
    pf = parquet_file(path, storage)
    schema = pf.schema_arrow
    meta = _metadata(schema, path)
    modalities = tuple(m for m in ("image", "text", "audio") if m in schema.names)
    for col in ("id", "split"):
        if col not in schema.names:
            raise DataError(f"dataset file {path}: missing column '{col}'")
    if pf.metadata.num_rows == 0:
        raise DataError(f"dataset file {path}: has no rows")
    inputs = InputSpec(vocab_size=_vocab_size(tokenizer, storage) if tokenizer else 0,
                       num_classes=len(meta.get("label_names", ())))
    starts = np.array([0, pf.metadata.row_group(0).num_rows])
    first = read_group(pf, path, 0, [m for m in ("image", "audio") if m in modalities], starts).slice(0, 1)
    if "image" in modalities:
        img = decode_image(first.column("image")[0].as_py(), path, 0)
        inputs = InputSpec(**{**inputs.__dict__, "channels": img.shape[0], "image_size": img.shape[1]})
    if "audio" in modalities:
        value = first.column("audio")[0].as_py() or []
        shape = (len(value), len(value[0]) if value and value[0] is not None else 0)
        audio_array(first.column("audio"), np.zeros(1, np.int64), path, shape)  # checks row 0 itself
        inputs = InputSpec(**{**inputs.__dict__, "frames": shape[0], "features": shape[1]})
    norm = _audio_norm(meta, path, inputs.features) if "audio_mean" in meta or "audio_std" in meta else None
    return DatasetInfo(path, meta.get("name", Path(path).stem), modalities, tuple(meta.get("label_names", ())),
                       tokenizer, inputs, norm, "label" in schema.names, storage)


def _metadata(schema: pa.Schema, path: str) -> dict[str, Any]:
    """The schema metadata key ``fedray`` as a dict, with errors naming the file."""
    raw = (schema.metadata or {}).get(b"fedray", b"{}")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"dataset file {path}: schema metadata 'fedray' is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"dataset file {path}: schema metadata 'fedray' must be a JSON object, got {type(meta).__name__}")
    names = meta.get("label_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"dataset file {path}: schema metadata 'fedray'.label_names must be a list of strings")
    return meta


def _audio_norm(meta: dict[str, Any], path: str, features: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``audio_mean`` / ``audio_std`` from the metadata: one finite value per feature, every std > 0."""
    stats = {}
    for key in ("audio_mean", "audio_std"):
        value = meta.get(key)
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros(0)
        if arr.shape != (features,) or not np.isfinite(arr).all():
            raise DataError(f"dataset file {path}: schema metadata 'fedray'.{key} must hold {features} finite "
                            f"numbers (one per audio feature), got {str(value)[:80]}")
        stats[key] = arr
    bad = np.flatnonzero(stats["audio_std"] <= 0)
    if len(bad):
        raise DataError(f"dataset file {path}: schema metadata 'fedray'.audio_std is {stats['audio_std'][bad[0]]:g} "
                        f"for feature {bad[0]} ({len(bad)} of {features} features <= 0); standardising by it "
                        "would divide by zero: recompute the statistics or drop them (fedray then computes them)")
    return tuple(stats["audio_mean"].tolist()), tuple(stats["audio_std"].tolist())


def split_rows(info: DatasetInfo, split: str, label_column: str | None = "label"
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices of ``split`` and their labels (None when the dataset has no such column, or ``label_column``
    is None). Labels must be integers >= 0 with no nulls: a -1 or a null would silently become a class."""
    names = parquet_file(info.path, info.storage).schema_arrow.names
    use = label_column is not None and label_column in names
    table = read_columns(info, ["split"] + ([label_column] if use else []))
    rows = np.flatnonzero(np.asarray(table.column("split").to_numpy(zero_copy_only=False)) == split)
    if not use:
        return rows, None
    return rows, check_labels(info, table.column(label_column).take(pa.array(rows, type=pa.int64())), rows,
                              label_column)


def check_labels(info: DatasetInfo, values: pa.Array | pa.ChunkedArray, rows: np.ndarray, name: str) -> np.ndarray:
    """Labels (``values``, one per dataset row in ``rows``) as int64, or a DataError naming the file, row, id and
    column of a bad one."""
    if not pa.types.is_integer(values.type):
        raise DataError(f"dataset file {info.path}, column '{name}': labels must be integers (class indices), "
                        f"got type {values.type}", column=name)
    values = column_array(values)
    nulls = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    labels = np.array(values.fill_null(-1).to_numpy(), dtype=np.int64)  # a writable copy (torch.from_numpy)
    bad = np.flatnonzero(nulls | (labels < 0))
    if len(bad):
        i = int(bad[0])
        problem = "null label" if nulls[i] else f"negative label {labels[i]}"
        raise row_error(info.path, int(rows[i]), name, f"{problem} ({len(bad)} such rows); labels are class "
                        "indices >= 0: fix or drop these rows", _row_id(info, int(rows[i])))
    return labels


def _row_id(info: DatasetInfo, row: int) -> object:
    """The ``id`` of one row, for messages (reads one row group's id column)."""
    try:
        return read_columns(info, ["id"], np.array([row])).column("id")[0].as_py()
    except DataError:
        return None


class Shard:
    """Decoded rows in memory: ``image`` uint8 [N, C, H, W], ``text_ids``/``text_mask`` int64 [N, T],
    ``audio`` float32 [N, frames, features], ``label`` int64 [N]."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def batch(self, idx: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None
              ) -> dict[str, torch.Tensor]:
        """Model inputs for rows ``idx``; images scaled to [-1, 1] (Normalize(0.5, 0.5), as in the paper)."""
        out = {k: v[idx] for k, v in self.tensors.items()}
        if "image" in out:
            img = out["image"].float().div_(127.5).sub_(1.0)
            out["image"] = _augment(img, generator) if augment else img
        return out


def _augment(img: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Random horizontal flip and a random 1/8-padded crop per image."""
    b, _, h, w = img.shape
    flip = torch.rand(b, generator=gen) < 0.5
    img = torch.where(flip[:, None, None, None], img.flip(-1), img)
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad), mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b), generator=gen)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def load_rows(info: DatasetInfo, rows: np.ndarray, max_length: int, label_column: str = "label",
              caption: int = 0) -> Shard:
    """Decode rows ``rows`` of the dataset into a :class:`Shard` (every row checked; errors name row and column)."""
    rows = np.asarray(rows, dtype=np.int64)
    names = parquet_file(info.path, info.storage).schema_arrow.names
    cols = [c for c in ("image", "text", "audio") if c in names] + ([label_column] if label_column in names else [])
    table = read_columns(info, ["id"] + cols, rows)
    ids = table.column("id").to_pylist()
    tensors: dict[str, torch.Tensor] = {}
    if "image" in cols:
        size = info.inputs.image_size
        tensors["image"] = torch.from_numpy(decode_images(table.column("image"), rows, info.path,
                                                          info.inputs.channels, size, ids))
    if "text" in cols:
        texts = captions(table.column("text"), rows, info.path, caption, ids)
        tensors["text_ids"], tensors["text_mask"] = tokenize(info, texts, max_length)
    if "audio" in cols:
        shape = (info.inputs.frames, info.inputs.features)
        audio = audio_array(table.column("audio"), rows, info.path, shape, ids)
        if info.audio_norm is not None:
            mean, std = (np.asarray(v, dtype=np.float32) for v in info.audio_norm)
            audio = (audio - mean) / std
        tensors["audio"] = torch.from_numpy(audio)
    if label_column in cols:
        tensors["label"] = torch.from_numpy(check_labels(info, table.column(label_column), rows, label_column))
    return Shard(tensors)


CHUNK_ROWS = 8192


def load_client_shards(info: DatasetInfo, rows: dict[int, np.ndarray], max_length: int, caption: int = 0
                       ) -> dict[int, Shard]:
    """Decode every client's rows in one pass over the file (thousands of clients per host), then split.

    Rows are decoded in file order, ``CHUNK_ROWS`` at a time, into tensors allocated once: a host's peak memory is
    its decoded shards plus one chunk's Arrow table, strings and tokenizer output, not all of them at once (5,000
    clients of 33 rows per host: 0.75 GB per host instead of 1.4-1.5 GB). A bad row is a DataError that also names
    the client holding it (``client 3: dataset file X, row 7 ...``).
    """
    clients = sorted(rows)
    if not clients:
        return {}
    flat = np.concatenate([rows[c] for c in clients])
    bounds = np.cumsum([0] + [len(rows[c]) for c in clients])
    order = np.argsort(flat, kind="stable")  # file order: each chunk reads only the row groups holding it
    tensors: dict[str, torch.Tensor] = {}
    try:
        for start in range(0, len(flat), CHUNK_ROWS):
            where = order[start:start + CHUNK_ROWS]
            for key, value in load_rows(info, flat[where], max_length, caption=caption).tensors.items():
                if key not in tensors:
                    tensors[key] = torch.empty((len(flat), *value.shape[1:]), dtype=value.dtype)
                tensors[key][torch.from_numpy(where)] = value
        whole = Shard(tensors)
    except DataError as err:
        if err.row is None:
            raise
        owner = next(c for c in clients if err.row in rows[c])
        raise err.for_client(owner) from None
    return {c: Shard({k: v[bounds[i]:bounds[i + 1]] for k, v in whole.tensors.items()}) for i, c in enumerate(clients)}


def tokenize(info: DatasetInfo, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention masks, padded/truncated to ``max_length`` (captions first cut to
    ``max_length * CHARS_PER_TOKEN`` characters, so a huge caption costs no more than a long one)."""
    if info.tokenizer is None:
        raise DataError(f"dataset {info.path}: has a text column but no tokenizer.json beside it")
    tok = _tokenizer(info.tokenizer, info.storage)
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=0)
    limit = max_length * CHARS_PER_TOKEN
    enc = tok.encode_batch([t[:limit] for t in texts])
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
    return ids, mask


def _tokenizer(path: str, storage: StorageConfig | None) -> "Tokenizer":  # noqa: F821
    """The ``tokenizers`` Tokenizer in ``path``; a missing or unreadable file is a DataError naming it."""
    from tokenizers import Tokenizer

    try:
        if st.is_s3(path):
            return Tokenizer.from_str(st.filesystem(storage).cat_file(st.strip(path)).decode())
        return Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises a bare Exception for malformed JSON
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise DataError(f"tokenizer {path}: not a readable tokenizer.json ({first}); rebuild it or remove it "
                        "together with the text column") from None


def _vocab_size(path: str, storage: StorageConfig | None = None) -> int:
    return _tokenizer(path, storage).get_vocab_size()
