"""Rebuild the embedded ``openclipart`` image–text dataset (one Parquet file plus a WordPiece tokenizer).

Public-domain clip art from Debian's ``openclipart-svg`` (0.18), the 13 semantic category folders, rasterised
with ``cairosvg`` and captioned from each drawing's title (or, where the title is shared by many drawings,
its file name), the folder it sits in, and its keyword tags. Neither the apt package nor cairosvg is needed
at run time: the output is vendored next to this script. Run with::

    apt-get install openclipart-svg && pip install cairosvg
    python -m fedray.data.embedded.build_openclipart [--out DIR] [--size PX]
"""

from __future__ import annotations

import argparse
import io
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from fedray.data.embedded.build_emoji import train_tokenizer, write_parquet

SVG_ROOT = Path("/usr/share/openclipart/svg")
# Folders whose drawings depict things (DATA.md D6); computer icons, shapes, logos, buttons and the
# like are left out of the dataset (distillation may use them: they are nobody's evaluation data).
CATEGORIES = ("animals", "buildings", "education", "electronics", "food", "geography", "office", "people",
              "plants", "recreation", "signs_and_symbols", "tools", "transportation")
IMAGE_SIZE = 32
RENDER_SIZE = 256  # longer side of the cairosvg raster, before the crop and the LANCZOS resize
VOCAB_SIZE = 6000  # holds every caption word (about 3.3k) plus the characters
GENERIC_TITLE = 3  # a title shared by this many drawings says nothing about one of them: use the file name
JUNK = re.compile(r"clipart|svg|aiga|sibmission|submission|advertising|various|^r\d+ ", re.I)
SUITS = {"c": "clubs", "d": "diamonds", "h": "hearts", "s": "spades"}
RANKS = {"a": "ace", "1": "ace", "j": "jack", "q": "queen", "k": "king"}
DEFAULT_OUT = Path(__file__).resolve().parent / "openclipart"


class ClipRow(NamedTuple):
    """One rendered drawing before it is written to Parquet."""

    id: str  # path under SVG_ROOT without ".svg", e.g. "animals/birds/eagle_01"
    category: str
    image: bytes
    text: list[str]


class ClipMeta(NamedTuple):
    path: Path
    category: str
    folder: str  # sub-folders below the category, e.g. "mammals/horses" ("" at the top)
    title: str
    tags: list[str]
    creator: str


def read_meta(path: Path) -> ClipMeta:
    """Title and keyword tags from the SVG's RDF metadata (the first 20 kB hold it)."""
    head = path.read_bytes()[:20000].decode("utf-8", "replace")
    work = m.group(0) if (m := re.search(r"<cc:Work.*?</cc:Work>", head, re.S)) else ""
    title = m.group(1).strip() if (m := re.search(r"<dc:title>(.*?)</dc:title>", work, re.S)) else ""
    subject = m.group(1) if (m := re.search(r"<dc:subject>(.*?)</dc:subject>", work, re.S)) else ""
    creator = m.group(1) if (m := re.search(r"<dc:creator>.*?<dc:title>(.*?)</dc:title>", work, re.S)) else ""
    rel = path.relative_to(SVG_ROOT)
    return ClipMeta(path, rel.parts[0], "/".join(rel.parts[1:-1]), title,
                    re.findall(r"<rdf:li>(.*?)</rdf:li>", subject), creator)


def words(text: str) -> str:
    """Lower-case ASCII words: accents stripped, underscores, hyphens and CamelCase split, XML entities dropped."""
    text = unicodedata.normalize("NFKD", re.sub(r"&[a-z]+;|&#\d+;", " ", text))  # León -> Leon
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # RayonnementLaser -> Rayonnement Laser
    text = re.sub(r"[_\-/#]+", " ", text).lower()
    return " ".join(re.sub(r"[^a-z0-9 ().,'&:]", " ", text).split())


def stem_phrase(meta: ClipMeta) -> str:
    """A phrase from the file name: numbering dropped; playing cards spelt out ("queen of hearts, white card")."""
    stem = meta.path.stem
    if m := re.fullmatch(r"(bordered|ornamental|simple|white)_([cdhs])_(\w+)", stem):
        style, suit, rank = m.groups()
        return f"{RANKS.get(rank, rank)} of {SUITS[suit]}, {style} playing card"
    stem = re.sub(r"(_?\d+|_)+$", "", stem)  # aiga_cashier1 -> aiga_cashier, sm_019 -> sm
    tokens = words(re.sub(r"^aiga_", "", stem)).split()
    author = words(meta.creator).split()  # file names end in the (truncated) author: dino_architetto_francesc_04
    while len(tokens) > 1 and any(a.startswith(tokens[-1]) for a in author):
        tokens.pop()
    return " ".join(tokens)


def caption(meta: ClipMeta, title_counts: Counter) -> str:
    """The title, or the file name's phrase where the title is shared, junk or empty."""
    title = words(re.sub(r"(?i)clipart by nicu buculei\s*-\s*", "", meta.title))
    if not title or title_counts[meta.title.lower().strip()] >= GENERIC_TITLE or JUNK.search(meta.title):
        return stem_phrase(meta) or title
    return title


def clean_tags(meta: ClipMeta, phrase: str) -> list[str]:
    """Up to 4 keyword tags: no empty, hash, folder-name or multi-word (mostly author) tags, none in the phrase."""
    skip = {meta.category, "signs and symbols", "hash", "sign", "symbol", "unsorted", "mapsym"}
    skip |= set(meta.folder.replace("_", " ").split("/"))
    out: list[str] = []
    for tag in meta.tags:
        t = words(tag)
        if not t or " " in t or t in skip or t in phrase.split() or t in out or re.search(r"\d|hash", t):
            continue
        out.append(t)
    return out[:4]


def captions(meta: ClipMeta, title_counts: Counter) -> list[str]:
    """``[phrase, "phrase, folder words", "phrase, tags"]``, e.g. for animals/mammals/horses/horse_01.svg
    ``["horse", "horse, mammals horses", "horse, mammal, animal"]``."""
    phrase = caption(meta, title_counts)
    folder = words(meta.folder.replace("/", " ")) or words(meta.category)
    tags = clean_tags(meta, phrase)
    return [phrase, f"{phrase}, {folder}", ", ".join([phrase] + tags) if tags else f"{phrase}, {folder}"]


def render(path: Path, size: int = IMAGE_SIZE) -> bytes | None:
    """Rasterise one SVG as a ``size``x``size`` RGB PNG on white (cropped to the drawing, centred), or None."""
    import cairosvg

    try:
        png = cairosvg.svg2png(url=str(path), output_width=RENDER_SIZE)
        layer = Image.open(io.BytesIO(png)).convert("RGBA")
        if layer.height > layer.width:  # the longer side gets RENDER_SIZE pixels
            png = cairosvg.svg2png(url=str(path), output_height=RENDER_SIZE)
            layer = Image.open(io.BytesIO(png)).convert("RGBA")
    except Exception:  # noqa: BLE001 - malformed SVGs raise many types; they are counted and skipped
        return None
    if (bbox := layer.getbbox()) is None:
        return None
    glyph = layer.crop(bbox)
    side = max(glyph.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2), mask=glyph)
    buf = io.BytesIO()
    canvas.resize((size, size), Image.LANCZOS).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def svg_files(categories: tuple[str, ...] = CATEGORIES) -> list[Path]:
    return sorted(p for c in categories for p in (SVG_ROOT / c).rglob("*.svg"))


def build_rows(size: int = IMAGE_SIZE) -> tuple[list[ClipRow], dict[str, int]]:
    """Caption every drawing, keep the first drawing of each caption, render; rows sorted by id, and counts."""
    metas = [read_meta(p) for p in svg_files()]
    title_counts = Counter(m.title.lower().strip() for m in metas)
    rows: list[ClipRow] = []
    seen: set[str] = set()
    dropped = Counter()
    for meta in metas:
        texts = captions(meta, title_counts)
        if len(texts[0]) < 2 or texts[0] in seen:  # a repeated caption has no single right image
            dropped["duplicate caption" if texts[0] in seen else "no caption"] += 1
            continue
        if (png := render(meta.path, size)) is None:
            dropped["failed to render"] += 1
            continue
        seen.add(texts[0])
        rows.append(ClipRow(str(meta.path.relative_to(SVG_ROOT).with_suffix("")), meta.category, png, texts))
    return rows, dict(dropped)


def main(argv: list[str] | None = None) -> None:
    """Build ``openclipart.parquet`` and ``tokenizer.json`` into ``--out`` (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE,
                        help="image side in pixels (the vendored set is 32; larger renders are for distillation)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rows, dropped = build_rows(args.size)
    split = write_parquet(rows, args.out / "openclipart.parquet", args.size, name="openclipart")
    tok = train_tokenizer([t for r in rows for t in r.text], args.out / "tokenizer.json", VOCAB_SIZE)
    n_test = split.count("test")
    print(f"wrote {len(rows)} rows ({len(rows) - n_test} train, {n_test} test) to {args.out}; "
          f"vocab {tok.get_vocab_size()}; dropped {dropped}")


if __name__ == "__main__":
    main()
