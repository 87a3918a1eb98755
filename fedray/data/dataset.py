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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from fedray.model import InputSpec

EMBEDDED = ("emoji", "avdigits")


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


def resolve_source(source: str) -> tuple[str, str | None]:
    """Parquet path and tokenizer path of an embedded name or a local path."""
    if source in EMBEDDED:
        root = resources.files("fedray.data").joinpath("embedded", source)
        return str(root.joinpath(f"{source}.parquet")), str(root.joinpath("tokenizer.json"))
    tok = Path(source).with_name("tokenizer.json")
    return source, (str(tok) if tok.is_file() else None)


def open_dataset(source: str) -> DatasetInfo:
    """Read a dataset's schema and metadata (no rows)."""
    path, tokenizer = resolve_source(source)
    if not Path(path).is_file():
        raise DataError(f"dataset {source!r}: no Parquet file at {path}; embedded sets are {', '.join(EMBEDDED)}")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"dataset file {path}: not a readable Parquet file ({err})") from None
    meta = json.loads((schema.metadata or {}).get(b"fedray", b"{}"))
    modalities = tuple(m for m in ("image", "text", "audio") if m in schema.names)
    for col in ("id", "split"):
        if col not in schema.names:
            raise DataError(f"dataset file {path}: missing column '{col}'")
    inputs = InputSpec(vocab_size=_vocab_size(tokenizer) if tokenizer else 0)
    if "image" in modalities:
        first = pq.read_table(path, columns=["image"]).column("image")[0].as_py()
        img = _decode_image(first, path, 0)
        inputs = InputSpec(**{**inputs.__dict__, "channels": img.shape[0], "image_size": img.shape[1]})
    if "audio" in modalities:
        first = np.asarray(pq.read_table(path, columns=["audio"]).column("audio")[0].as_py(), dtype=np.float32)
        inputs = InputSpec(**{**inputs.__dict__, "frames": first.shape[0], "features": first.shape[1]})
    return DatasetInfo(path, meta.get("name", Path(path).stem), modalities, tuple(meta.get("label_names", ())),
                       tokenizer, inputs)


def split_rows(info: DatasetInfo, split: str, label_column: str = "label") -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices of ``split`` and their labels (None when the dataset has no such column)."""
    names = pq.read_schema(info.path).names
    cols = ["split"] + ([label_column] if label_column in names else [])
    table = pq.read_table(info.path, columns=cols)
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
    names = pq.read_schema(info.path).names
    cols = [c for c in ("image", "text", "audio") if c in names] + ([label_column] if label_column in names else [])
    table = pq.read_table(info.path, columns=cols).take(pa.array(rows, type=pa.int64()))
    tensors: dict[str, torch.Tensor] = {}
    if "image" in cols:
        imgs = [_decode_image(b, info.path, int(r)) for b, r in zip(table.column("image").to_pylist(), rows)]
        tensors["image"] = torch.from_numpy(np.stack(imgs))
    if "text" in cols:
        texts = [c[min(caption, len(c) - 1)] for c in table.column("text").to_pylist()]
        tensors["text_ids"], tensors["text_mask"] = tokenize(info, texts, max_length)
    if "audio" in cols:
        audio = np.asarray(table.column("audio").to_pylist(), dtype=np.float32)
        tensors["audio"] = torch.from_numpy(audio)
    if label_column in cols:
        tensors["label"] = torch.from_numpy(table.column(label_column).to_numpy().astype(np.int64))
    return Shard(tensors)


def tokenize(info: DatasetInfo, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention masks, padded/truncated to ``max_length``."""
    from tokenizers import Tokenizer

    if info.tokenizer is None:
        raise DataError(f"dataset {info.path}: has a text column but no tokenizer.json beside it")
    tok = Tokenizer.from_file(info.tokenizer)
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=0)
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
    return ids, mask


def _vocab_size(path: str) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path).get_vocab_size()


def _decode_image(data: bytes, path: str, row: int) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 [C, H, W]."""
    try:
        img = np.asarray(Image.open(io.BytesIO(data)))
    except Exception as err:  # Pillow raises several unrelated types for bad bytes
        raise DataError(f"dataset file {path}, row {row}, column 'image': cannot decode image ({err})") from None
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)[:3].copy()
