"""Parquet datasets: metadata on the driver, decoded rows on the clients.

Schema (one row per item; see README "Dataset format"):
``id`` string, ``split`` string (train/test), ``label`` int64 (optional), ``image`` binary (PNG/JPEG),
``text`` list<string> (captions, first is the main one), ``audio`` list<list<float32>> (frames x features).
Schema metadata ``fedray`` holds JSON with ``name``, ``label_names`` and ``modalities``.

The driver reads only the ``split`` and label columns (to partition); each client decodes only
its own rows, once, and keeps them in memory as tensors.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from fedray.config.schema import StorageConfig
from fedray.data import storage as st
from fedray.model import InputSpec

EMBEDDED = ("emoji", "avdigits", "openclipart")


class DataError(ValueError):
    """Unusable dataset; the message names the file, column or row."""


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
    """Columns of the whole file, or of ``rows`` only (reading just the row groups that hold them)."""
    pf = parquet_file(info.path, info.storage)
    try:
        if rows is None:
            return pf.read(columns=columns)
        starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
        groups = sorted(set(np.searchsorted(starts, rows, side="right") - 1))
        table = pf.read_row_groups(groups, columns=columns)
        local = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups]) if groups else np.zeros(0, int)
        return table.take(pa.array(np.searchsorted(local, rows), type=pa.int64()))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"dataset file {info.path}: cannot read columns {columns} ({err})") from None


def open_dataset(source: str, storage: StorageConfig | None = None) -> DatasetInfo:
    """Read a dataset's schema and metadata, plus the first image/audio row for shapes (no other rows)."""
    storage = st.resolve(storage) if st.is_s3(source) else None
    path, tokenizer = resolve_source(source, storage)
    pf = parquet_file(path, storage)
    schema = pf.schema_arrow
    meta = json.loads((schema.metadata or {}).get(b"fedray", b"{}"))
    modalities = tuple(m for m in ("image", "text", "audio") if m in schema.names)
    for col in ("id", "split"):
        if col not in schema.names:
            raise DataError(f"dataset file {path}: missing column '{col}'")
    if pf.metadata.num_rows == 0:
        raise DataError(f"dataset file {path}: has no rows")
    inputs = InputSpec(vocab_size=_vocab_size(tokenizer, storage) if tokenizer else 0,
                       num_classes=len(meta.get("label_names", ())))
    first = pf.read_row_group(0, columns=[m for m in ("image", "audio") if m in modalities]).slice(0, 1)
    if "image" in modalities:
        img = _decode_image(first.column("image")[0].as_py(), path, 0)
        inputs = InputSpec(**{**inputs.__dict__, "channels": img.shape[0], "image_size": img.shape[1]})
    if "audio" in modalities:
        audio = _audio_array(first.column("audio")[0].as_py(), path, 0)
        inputs = InputSpec(**{**inputs.__dict__, "frames": audio.shape[0], "features": audio.shape[1]})
    norm = (tuple(meta["audio_mean"]), tuple(meta["audio_std"])) if "audio_mean" in meta else None
    return DatasetInfo(path, meta.get("name", Path(path).stem), modalities, tuple(meta.get("label_names", ())),
                       tokenizer, inputs, norm, "label" in schema.names, storage)


def split_rows(info: DatasetInfo, split: str, label_column: str = "label") -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices of ``split`` and their labels (None when the dataset has no such column)."""
    names = parquet_file(info.path, info.storage).schema_arrow.names
    cols = ["split"] + ([label_column] if label_column in names else [])
    table = read_columns(info, cols)
    rows = np.flatnonzero(np.asarray(table.column("split").to_numpy(zero_copy_only=False)) == split)
    labels = table.column(label_column).to_numpy()[rows] if label_column in names else None
    return rows, labels


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
    """Decode rows ``rows`` of the dataset into a :class:`Shard`."""
    names = parquet_file(info.path, info.storage).schema_arrow.names
    cols = [c for c in ("image", "text", "audio") if c in names] + ([label_column] if label_column in names else [])
    table = read_columns(info, cols, np.asarray(rows, dtype=np.int64))
    tensors: dict[str, torch.Tensor] = {}
    if "image" in cols:
        imgs = [_decode_image(b, info.path, int(r)) for b, r in zip(table.column("image").to_pylist(), rows)]
        tensors["image"] = torch.from_numpy(np.stack(imgs))
    if "text" in cols:
        texts = [c[min(caption, len(c) - 1)] for c in table.column("text").to_pylist()]
        tensors["text_ids"], tensors["text_mask"] = tokenize(info, texts, max_length)
    if "audio" in cols:
        shape = (info.inputs.frames, info.inputs.features)
        audio = np.stack([_audio_array(a, info.path, int(r), shape) for a, r in zip(table.column("audio").to_pylist(), rows)])
        if info.audio_norm is not None:
            mean, std = (np.asarray(v, dtype=np.float32) for v in info.audio_norm)
            audio = (audio - mean) / std
        tensors["audio"] = torch.from_numpy(audio)
    if label_column in cols:
        tensors["label"] = torch.from_numpy(table.column(label_column).to_numpy().astype(np.int64))
    return Shard(tensors)


def tokenize(info: DatasetInfo, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention masks, padded/truncated to ``max_length``."""
    from tokenizers import Tokenizer

    if info.tokenizer is None:
        raise DataError(f"dataset {info.path}: has a text column but no tokenizer.json beside it")
    tok = _tokenizer(info.tokenizer, info.storage)
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=0)
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
    return ids, mask


def _tokenizer(path: str, storage: StorageConfig | None) -> "Tokenizer":  # noqa: F821
    from tokenizers import Tokenizer

    if st.is_s3(path):
        return Tokenizer.from_str(st.filesystem(storage).cat_file(st.strip(path)).decode())
    return Tokenizer.from_file(path)


def _vocab_size(path: str, storage: StorageConfig | None = None) -> int:
    return _tokenizer(path, storage).get_vocab_size()


def _audio_array(value: list | None, path: str, row: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One row's audio as float32 [frames, features]; every row must have the first row's shape."""
    try:
        a = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        a = np.zeros(0)  # ragged: reported below
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        want = f"{shape[0]} x {shape[1]}" if shape else "frames x features"
        got = "x".join(map(str, a.shape)) if a.size else "ragged or empty"
        raise DataError(f"dataset file {path}, row {row}, column 'audio': expected a {want} array, got {got}")
    return a


def _decode_image(data: bytes, path: str, row: int) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 [C, H, W]."""
    try:
        img = np.asarray(Image.open(io.BytesIO(data)))
    except Exception as err:  # Pillow raises several unrelated types for bad bytes
        raise DataError(f"dataset file {path}, row {row}, column 'image': cannot decode image ({err})") from None
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)[:3].copy()

