"""Audio preprocessing without torchaudio: WAV reading, resampling and log-mel features (torch.stft and
transformers' mel filter bank)."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import torch


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] (channels averaged) and the sample rate of a PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as err:
        raise ValueError(f"audio file {path}: not a readable PCM WAV file ({err})") from None
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        x = np.frombuffer(raw, dtype=dtype).astype(np.float32) / float(np.iinfo(dtype).max)
    else:
        raise ValueError(f"audio file {path}: {8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)")
    if len(x) == 0:
        raise ValueError(f"audio file {path}: has no samples")
    return x.reshape(-1, channels).mean(axis=1), rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (adequate for log-mel features)."""
    if rate == target:
        return x
    n = max(1, round(len(x) * target / rate))
    return np.interp(np.arange(n) * (rate / target), np.arange(len(x)), x).astype(np.float32)


def mel_filters(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1] from 20 Hz to Nyquist, unnormalised (transformers')."""
    from transformers.audio_utils import mel_filter_bank

    with warnings.catch_warnings():  # 128 mels over a 25 ms window leave the lowest filters empty: as intended
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        fb = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=20.0,
                             max_frequency=rate / 2, sampling_rate=rate, norm=None, mel_scale="htk")
    return fb.T.astype(np.float32)  # [n_mels, bins]


def log_mel(x: np.ndarray, rate: int, n_mels: int = 128, frames: int | None = None, win_ms: float = 25.0,
            hop_ms: float = 10.0) -> np.ndarray:
    """Log-mel spectrogram [frames, n_mels] (Hann window, power spectrum, natural log), cropped or padded
    with the log floor to ``frames`` when given."""
    n_fft = int(round(rate * win_ms / 1000))
    hop = int(round(rate * hop_ms / 1000))
    signal = torch.from_numpy(np.pad(x, (0, max(0, n_fft - len(x)))).astype(np.float32))
    spec = torch.stft(signal, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().pow(2)  # [n_fft // 2 + 1, T]
    mel = torch.from_numpy(mel_filters(n_mels, n_fft, rate)) @ spec  # [n_mels, T]
    out = torch.log(mel + 1e-6).T.numpy()  # [T, n_mels]
    if frames is not None:
        out = out[:frames]
        if len(out) < frames:
            out = np.pad(out, ((0, frames - len(out)), (0, 0)), constant_values=float(np.log(1e-6)))
    return out.astype(np.float32)
