"""The embedded openclipart set: fedray's dataset format, one image per caption, a tokenizer that spells
every caption without [UNK], and decodable 32-px images for clients and the server."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from fedray.data import open_dataset
from fedray.data.dataset import load_rows, split_rows


def test_openclipart_opens_as_an_embedded_image_text_set():
    info = open_dataset("openclipart")
    assert info.modalities == ("image", "text")
    assert (info.inputs.channels, info.inputs.image_size) == (3, 32)
    assert len(info.label_names) == 13 and "animals" in info.label_names
    train, labels = split_rows(info, "train")
    test, _ = split_rows(info, "test")
    assert (len(train), len(test)) == (2224, 556)
    assert set(np.unique(labels)) == set(range(13))  # every class in the training rows


def test_each_main_caption_names_one_drawing_and_tokenises_without_unknowns():
    info = open_dataset("openclipart")
    table = pq.read_table(info.path, columns=["id", "text"]).to_pydict()
    main = [t[0] for t in table["text"]]
    assert len(set(main)) == len(main)  # instance-level retrieval needs one right image per caption
    assert all(len(t) == 3 for t in table["text"])
    tok = Tokenizer.from_file(info.tokenizer)
    unk = tok.token_to_id("[UNK]")
    assert all(unk not in e.ids for e in tok.encode_batch([c for t in table["text"] for c in t]))
    assert json.loads(pq.read_schema(info.path).metadata[b"fedray"])["name"] == "openclipart"


def test_openclipart_rows_decode_for_a_client():
    info = open_dataset("openclipart")
    rows, _ = split_rows(info, "test")
    shard = load_rows(info, rows[:8], max_length=16, caption=1)
    batch = shard.batch(np.arange(8))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["text_ids"].shape == (8, 16)
    assert float(batch["image"].min()) >= -1.0 and float(batch["image"].max()) <= 1.0
