"""Converters from public dataset layouts to fedray Parquet (local path or s3:// URI).

coco:    ``images[]`` + ``annotations[]`` (image_id, caption) JSON files; one row per image with all its
         captions; split ``test`` for files whose name contains ``val``, else ``train``. No labels.
advance: class folders of paired image + ``.wav`` files (``ROOT/<class>/x.jpg`` + ``x.wav``, or the
         release's ``ROOT/vision/<class>/x.jpg`` + ``ROOT/sound/<class>/x.wav``); per-class 80/20 split
         with ``random.Random(seed)`` as in the paper; audio as log-mel features [frames, mels], whose
         train-split per-mel mean/std go into the metadata.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from fedray.config.schema import StorageConfig
from fedray.data import storage as st
from fedray.data.audio import log_mel, read_wav, resample
from fedray.data.dataset import DataError
from fedray.rundir import FILE_MODE

IMAGE_EXT = (".jpg", ".jpeg", ".png")


def encode_image(path: Path, size: int) -> bytes:
    """Resize to ``size`` x ``size`` RGB (bilinear) and re-encode: PNG stays PNG (lossless), else JPEG q95."""
    try:
        img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    except (OSError, ValueError) as err:
        raise DataError(f"image file {path}: cannot decode ({err})") from None
    buf = io.BytesIO()
    png = path.suffix.lower() == ".png"
    img.save(buf, format="PNG" if png else "JPEG", **({} if png else {"quality": 95}))
    return buf.getvalue()


def write_dataset(columns: dict[str, list[Any]], types: dict[str, pa.DataType], meta: dict[str, Any], out: str,
                  storage: StorageConfig | None = None, tokenizer_json: str | None = None) -> None:
    """Write the Parquet file (metadata under ``fedray``) and, for text, ``tokenizer.json`` beside it."""
    schema = pa.schema([pa.field(k, types[k]) for k in columns]).with_metadata({"fedray": json.dumps(meta)})
    table = pa.Table.from_pydict(columns, schema=schema)
    tok_path = out.rsplit("/", 1)[0] + "/tokenizer.json" if "/" in out else "tokenizer.json"
    if st.is_s3(out):
        fs = st.filesystem(storage)
        try:
            with fs.open(st.strip(out), "wb") as f:  # one upload, visible only when complete
                pq.write_table(table, f, compression="zstd", row_group_size=1024)
            if tokenizer_json is not None:
                fs.pipe_file(st.strip(tok_path), tokenizer_json.encode())
        except Exception as err:  # noqa: BLE001 - explain() names bucket and endpoint, never credentials
            raise st.explain(out, err, storage, what="--out") from None
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        pq.write_table(table, tmp.name, compression="zstd", row_group_size=1024)
    os.chmod(tmp.name, FILE_MODE)  # NamedTemporaryFile makes it 0600; a dataset is shared like any file
    Path(tmp.name).replace(path)  # atomic: a half-written file never carries the final name
    if tokenizer_json is not None:
        (path.parent / "tokenizer.json").write_text(tokenizer_json)


def convert_coco(images: str, captions: list[str], out: str, image_size: int = 224, tokenizer: str | None = None,
                 storage: StorageConfig | None = None, limit: int | None = None) -> dict[str, int]:
    """COCO captions JSON + image folder -> Parquet rows (id, split, image, text). Returns rows per split."""
    from fedray.data.embedded.build_emoji import train_tokenizer

    root = Path(images)
    ids, splits, blobs, texts = [], [], [], []
    for ann_path in captions:
        try:
            doc = json.loads(Path(ann_path).read_text())
            entries, anns = doc["images"], doc["annotations"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"captions file {ann_path}: not a COCO captions file with images[] and "
                            f"annotations[] ({type(err).__name__}: {err})") from None
        split = "test" if "val" in Path(ann_path).name else "train"
        subdir = Path(ann_path).stem.removeprefix("captions_")  # captions_val2017.json -> val2017/
        by_image: dict[int, list[str]] = defaultdict(list)
        for a in anns:
            by_image[a["image_id"]].append(a["caption"].strip())
        for n, entry in enumerate(sorted(entries, key=lambda e: e["id"])):
            if limit is not None and n >= limit:
                break
            if not by_image.get(entry["id"]):
                continue  # an image without captions has no pair to learn from
            file = root / entry["file_name"]
            if not file.is_file() and (root / subdir / entry["file_name"]).is_file():
                file = root / subdir / entry["file_name"]
            if not file.is_file():
                raise DataError(f"captions file {ann_path}: image {entry['file_name']} (id {entry['id']}) "
                                f"is not in {root} or {root / subdir}")
            ids.append(str(entry["id"]))
            splits.append(split)
            blobs.append(encode_image(file, image_size))
            texts.append(by_image[entry["id"]])
    if not ids:
        raise DataError(f"captions {captions}: no image with captions found")
    with tempfile.TemporaryDirectory() as tmp:
        if tokenizer is not None:
            tok_json = Path(tokenizer).read_text()
        else:
            train_tokenizer([t for caps, s in zip(texts, splits) if s == "train" for t in caps] or texts[0],
                            Path(tmp) / "tokenizer.json")
            tok_json = (Path(tmp) / "tokenizer.json").read_text()
    meta = {"name": Path(st.strip(out)).stem, "modalities": ["image", "text"], "image_size": image_size,
            "label_names": []}
    write_dataset({"id": ids, "split": splits, "image": blobs, "text": texts},
                  {"id": pa.string(), "split": pa.string(), "image": pa.binary(), "text": pa.list_(pa.string())},
                  meta, out, storage, tok_json)
    return {s: splits.count(s) for s in ("train", "test")}


def advance_pairs(root: Path) -> dict[str, list[tuple[Path, Path]]]:
    """(image, wav) pairs per class folder, paired by file stem; sorted for reproducibility."""
    vision, sound = (root / "vision", root / "sound") if (root / "vision").is_dir() else (root, root)
    classes = sorted(d.name for d in vision.iterdir() if d.is_dir()) if vision.is_dir() else []
    if not classes:
        raise DataError(f"advance root {root}: no class folders (expected ROOT/<class>/ or ROOT/vision/<class>/)")
    pairs: dict[str, list[tuple[Path, Path]]] = {}
    for c in classes:
        found = []
        for img in sorted(p for p in (vision / c).iterdir() if p.suffix.lower() in IMAGE_EXT):
            wav = sound / c / (img.stem + ".wav")
            if not wav.is_file():
                raise DataError(f"advance root {root}: image {img} has no {wav.name} in {sound / c}")
            found.append((img, wav))
        if found:
            pairs[c] = found
    return pairs


def convert_advance(root: str, out: str, image_size: int = 224, sample_rate: int = 16000, mels: int = 128,
                    frames: int = 1024, test_fraction: float = 0.2, seed: int = 42,
                    storage: StorageConfig | None = None) -> dict[str, int]:
    """ADVANCE-style class folders -> Parquet rows (id, split, label, image, audio). Returns rows per split."""
    pairs = advance_pairs(Path(root))
    label_names = sorted(pairs)
    rng = random.Random(seed)
    ids, splits, labels, blobs, audio = [], [], [], [], []
    for label, c in enumerate(label_names):
        items = list(pairs[c])
        rng.shuffle(items)
        n_test = int(round(len(items) * test_fraction))
        for i, (img, wav) in enumerate(items):
            try:
                x, rate = read_wav(wav)
            except ValueError as err:
                raise DataError(str(err)) from None
            ids.append(f"{c}/{img.stem}")
            splits.append("test" if i < n_test else "train")
            labels.append(label)
            blobs.append(encode_image(img, image_size))
            audio.append(log_mel(resample(x, rate, sample_rate), sample_rate, mels, frames))
    train = np.stack([a for a, s in zip(audio, splits) if s == "train"] or audio).reshape(-1, mels)
    meta = {"name": Path(st.strip(out)).stem, "modalities": ["image", "audio"], "image_size": image_size,
            "label_names": label_names, "audio_features": "log_mel", "audio_shape": [frames, mels],
            "sample_rate": sample_rate,
            # train-split statistics: every client standardises audio with these (see DatasetInfo.audio_norm)
            "audio_mean": train.mean(0).tolist(), "audio_std": (train.std(0) + 1e-6).tolist()}
    write_dataset({"id": ids, "split": splits, "label": labels, "image": blobs, "audio": [a.tolist() for a in audio]},
                  {"id": pa.string(), "split": pa.string(), "label": pa.int64(), "image": pa.binary(),
                   "audio": pa.list_(pa.list_(pa.float32()))}, meta, out, storage)
    return {s: splits.count(s) for s in ("train", "test")}
