"""Converters round-trip tiny fixtures written in the real COCO and ADVANCE formats; log-mel features."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedray.data import DataError, load_rows, open_dataset, split_rows
from fedray.data.audio import log_mel, mel_filters, read_wav, resample
from fedray.data.convert import convert_advance, convert_coco


def write_wav(path: Path, seconds: float, rate: int, freq: float, channels: int = 1) -> None:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x, channels).tobytes())


def make_coco(root: Path) -> tuple[Path, list[Path]]:
    """train2017/ (PNG) and val2017/ (JPEG) folders plus captions_*.json in COCO's layout."""
    anns = []
    for split, ext, ids in (("train2017", "png", [11, 7, 3]), ("val2017", "jpg", [5, 9])):
        (root / split).mkdir(parents=True)
        images = []
        for i in ids:
            name = f"{i:012d}.{ext}"
            Image.new("RGB", (40, 30), (i * 20, 255 - i * 20, 7 * i)).save(root / split / name)
            images.append({"id": i, "file_name": name, "width": 40, "height": 30})
        captions = [{"id": 100 + 10 * i + k, "image_id": i, "caption": f"image {i} caption {k} "}
                    for i in ids if i != 7 for k in range(i % 3 + 1)]  # image 7 has no caption
        path = root / f"captions_{split}.json"
        path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": captions}))
        anns.append(path)
    return root, anns


def test_coco_round_trip(tmp_path):
    root, anns = make_coco(tmp_path / "coco")
    counts = convert_coco(str(root), [str(a) for a in anns], str(tmp_path / "out" / "coco.parquet"), image_size=16)
    assert counts == {"train": 2, "test": 2}
    info = open_dataset(str(tmp_path / "out" / "coco.parquet"))
    assert info.modalities == ("image", "text") and not info.has_labels and info.tokenizer is not None
    train, _ = split_rows(info, "train")
    test, _ = split_rows(info, "test")
    shard = load_rows(info, np.arange(4), max_length=8)
    assert shard.tensors["image"].shape == (4, 3, 16, 16)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out" / "coco.parquet").to_pydict()
    assert table["id"] == ["3", "11", "5", "9"]  # image 7 (no captions) is skipped
    assert table["text"][1] == ["image 11 caption 0", "image 11 caption 1", "image 11 caption 2"]
    # PNG stays lossless: pixels equal a bilinear resize of the original
    want = np.asarray(Image.open(root / "train2017" / "000000000011.png").convert("RGB").resize((16, 16), Image.BILINEAR))
    assert np.array_equal(shard.tensors["image"][1].numpy().transpose(1, 2, 0), want)
    assert len(train) == 2 and len(test) == 2


def test_coco_missing_image_names_the_file(tmp_path):
    root, anns = make_coco(tmp_path / "coco")
    (root / "val2017" / "000000000009.jpg").unlink()
    with pytest.raises(DataError, match="000000000009.jpg"):
        convert_coco(str(root), [str(a) for a in anns], str(tmp_path / "o.parquet"), image_size=16)


def make_advance(root: Path, per_class: int = 5) -> None:
    """ADVANCE release layout: vision/<class>/*.jpg and sound/<class>/*.wav, paired by stem."""
    for c, (colour, freq) in {"beach": ((200, 180, 90), 440.0), "forest": ((20, 120, 30), 1500.0)}.items():
        (root / "vision" / c).mkdir(parents=True)
        (root / "sound" / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (24, 24), colour).save(root / "vision" / c / f"{c}_{i}.jpg", quality=95)
            write_wav(root / "sound" / c / f"{c}_{i}.wav", 0.2 + 0.02 * i, 8000, freq, channels=1 + i % 2)


def test_advance_round_trip(tmp_path):
    make_advance(tmp_path / "adv")
    out = str(tmp_path / "adv.parquet")
    counts = convert_advance(str(tmp_path / "adv"), out, image_size=8, sample_rate=8000, mels=16, frames=12)
    assert counts == {"train": 8, "test": 2}  # per-class 80/20
    info = open_dataset(out)
    assert info.label_names == ("beach", "forest") and info.inputs.num_classes == 2
    assert (info.inputs.frames, info.inputs.features) == (12, 16) and info.audio_norm is not None
    rows, labels = split_rows(info, "train")
    shard = load_rows(info, rows, max_length=8)
    # audio arrives standardised with the train-split statistics: mean 0, std 1 per mel bin
    audio = shard.tensors["audio"].numpy().reshape(-1, 16)
    assert np.allclose(audio.mean(0), 0, atol=1e-4) and np.allclose(audio.std(0), 1, atol=1e-2)
    # and the raw features are exactly log_mel of the wav
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    r = table["id"].index("forest/forest_3")
    x, rate = read_wav(tmp_path / "adv" / "sound" / "forest" / "forest_3.wav")
    assert np.allclose(np.asarray(table["audio"][r], dtype=np.float32), log_mel(x, rate, 16, 12), atol=1e-5)
    assert table["label"][r] == 1


def test_log_mel_peaks_at_the_tone():
    rate = 16000
    t = np.arange(rate // 4) / rate
    feats = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32), rate, n_mels=40)
    fb = mel_filters(40, 400, rate)
    tone_bin = int(round(1000 / (rate / 2) * 200))  # FFT bin of 1 kHz
    assert feats.mean(0).argmax() == fb[:, tone_bin].argmax()
    assert feats.shape[0] == 1 + (rate // 4) // 160
    assert len(resample(np.zeros(800, np.float32), 8000, 16000)) == 1600


@pytest.mark.parametrize(("n_mels", "n_fft", "rate"), [(128, 400, 16000), (40, 400, 16000), (64, 512, 22050), (8, 100, 8000)])
def test_transformers_mel_filters_equal_the_htk_formula_fedray_used(n_mels, n_fft, rate):
    # the hand-written filter bank these features were built with until transformers' replaced it
    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10.0 ** (np.linspace(to_mel(20.0), to_mel(rate / 2), n_mels + 2) / 2595.0) - 1.0)
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - lower) / np.maximum(centre - lower, 1e-9), (upper - bins) / np.maximum(upper - centre, 1e-9)
    reference = np.maximum(0.0, np.minimum(up, down))

    assert np.abs(mel_filters(n_mels, n_fft, rate) - reference).max() < 1e-6


def test_advance_bad_wav_names_the_file(tmp_path):
    make_advance(tmp_path / "adv", per_class=2)
    bad = tmp_path / "adv" / "sound" / "beach" / "beach_1.wav"
    bad.write_bytes(b"RIFF-not-really")
    with pytest.raises(DataError, match="beach_1.wav"):
        convert_advance(str(tmp_path / "adv"), str(tmp_path / "a.parquet"), image_size=8, sample_rate=8000, mels=8,
                        frames=4)


def test_cli_convert_advance(tmp_path, capsys):
    from fedray.cli import main

    make_advance(tmp_path / "adv", per_class=3)
    rc = main(["data", "convert", "advance", "--root", str(tmp_path / "adv"), "--out", str(tmp_path / "x.parquet"),
               "--image-size", "8", "--sample-rate", "8000", "--mels", "8", "--frames", "4"])
    assert rc == 0 and "4 train rows, 2 test rows" in capsys.readouterr().out
