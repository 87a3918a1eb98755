"""Driver-side validation: header checks without decoding, sampling for large columns, clients naming themselves."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from fedray.data import DataError, open_dataset
from fedray.data.dataset import load_client_shards, tokenize
from fedray.data.decode import image_headers
from fedray.data.validate import validate_rows


def _img(mode: str, side: int = 8, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side)).save(buf, fmt)
    return buf.getvalue()


def test_png_headers_are_read_from_the_arrow_buffers_without_decoding():
    values = pa.array([_img("RGB", 8), _img("L", 16), _img("RGBA", 4), _img("P", 8), _img("LA", 8),
                       _img("RGB", 8, "JPEG"), None, b"", b"x" * 40])

    width, height, channels = image_headers(values.slice(0))

    assert width.tolist() == [8, 16, 4, 8, 8, -1, -1, -1, -1]  # JPEG, null, empty, garbage: Pillow decides
    assert height.tolist()[:5] == [8, 16, 4, 8, 8]
    assert channels.tolist()[:5] == [3, 1, 3, 3, 1]
    assert image_headers(values.slice(3, 2))[0].tolist() == [8, 8]  # a sliced array keeps its offset


def _write(path: Path, images: list[bytes | None], row_group_size: int) -> str:
    n = len(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": [f"r{i}" for i in range(n)], "split": ["train"] * (n - 4) + ["test"] * 4,
                      "image": pa.array(images, pa.binary()), "text": [[f"caption {i}"] for i in range(n)]})
    pq.write_table(table.replace_schema_metadata({"fedray": '{"name": "v"}'}), path, row_group_size=row_group_size)
    (path.parent / "tokenizer.json").write_text(Path(open_dataset("emoji").tokenizer).read_text())
    return str(path)


def test_headers_alone_catch_size_and_mode_when_the_column_is_too_big_to_decode(tmp_path, tiny):
    images = [_img("RGB") for _ in range(24)]
    images[9] = _img("L")
    info = open_dataset(_write(tmp_path / "d.parquet", images, 8))

    with pytest.raises(DataError, match=r"row 9 \(id 'r9'\), column 'image': grayscale image among colour ones"):
        validate_rows(tiny(), info, np.arange(24), decode_bytes=0)


def _sampled_groups(cfg, info, budget) -> list[int]:
    from fedray.data.validate import _sample

    pf = pq.ParquetFile(info.path)
    return _sample(pf, np.arange(pf.num_row_groups), "image", budget, cfg.train.seed).tolist()


def test_a_large_column_is_checked_on_a_sample_of_row_groups_and_clients_check_the_rest(tmp_path, tiny):
    cfg = tiny()
    good = open_dataset(_write(tmp_path / "good" / "d.parquet", [_img("RGB") for _ in range(64)], 8))  # 8 groups
    budget = 2 * pq.ParquetFile(good.path).metadata.row_group(0).column(2).total_compressed_size
    sampled = _sampled_groups(cfg, good, budget)
    skipped = next(g for g in range(8) if g not in sampled)
    images = [_img("RGB") for _ in range(64)]
    bad_row = 8 * skipped + 3
    images[bad_row] = b"\x89PNG\r\n\x1a\n but the rest is damaged"
    info = open_dataset(_write(tmp_path / "bad" / "d.parquet", images, 8))

    report = validate_rows(cfg, info, np.arange(64), read_bytes=budget, decode_bytes=0)

    assert _sampled_groups(cfg, info, budget) == sampled  # the damaged group stayed out of the sample
    assert report.checked["image"] == 8 * len(sampled) < 64
    owner = bad_row // 20
    with pytest.raises(DataError, match=rf"^client {owner}: dataset file .*, row {bad_row} \(id 'r{bad_row}'\), "
                                        r"column 'image': cannot decode image"):
        load_client_shards(info, {c: np.arange(20 * c, min(64, 20 * c + 20)) for c in range(4)}, 8)


def test_the_default_data_passes_and_every_row_is_decoded(tiny):
    cfg = tiny()
    info = open_dataset("emoji")

    report = validate_rows(cfg, info, np.arange(1898))

    assert report.decoded and report.checked == {"image": 1898, "text": 1898}


def test_a_huge_caption_is_cut_before_tokenising_without_changing_its_tokens():
    info = open_dataset("emoji")
    text = "grinning face " * 15_000  # 210,000 characters

    ids, mask = tokenize(info, [text], max_length=16)
    short_ids, _ = tokenize(info, [text[:16 * 32]], max_length=16)

    assert ids.tolist() == short_ids.tolist() and int(mask.sum()) == 16


def test_shards_decoded_in_small_chunks_equal_one_pass(monkeypatch):
    # Clients hold rows scattered over the file (as a Dirichlet partition gives them); decoding them in file order,
    # 7 rows at a time, must give every client exactly the tensors of one pass over all its rows.
    from fedray.data import dataset
    from fedray.data.dataset import load_rows

    info = open_dataset("emoji")
    rows = np.random.default_rng(0).permutation(1898)[:90]
    clients = {c: rows[30 * c:30 * c + 30] for c in range(3)}
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 7)

    shards = load_client_shards(info, clients, 16, caption=1)

    for c, own in clients.items():
        one_pass = load_rows(info, own, 16, caption=1).tensors
        assert shards[c].tensors.keys() == one_pass.keys()
        assert all(torch.equal(shards[c].tensors[k], one_pass[k]) for k in one_pass)
