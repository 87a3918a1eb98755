"""Audio preprocessing without torchaudio: WAV reading, resampling and log-mel features (numpy + torch.stft)."""

from __future__ import annotations

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


def mel_filterbank(n_mels: int, n_fft: int, rate: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1]."""
    fmax = fmax or rate / 2

    def to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))  # [n_mels + 2]
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)  # FFT bin centre frequencies
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - bins) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(x: np.ndarray, rate: int, n_mels: int = 128, frames: int | None = None, win_ms: float = 25.0,
            hop_ms: float = 10.0) -> np.ndarray:
    """Log-mel spectrogram [frames, n_mels] (Hann window, power spectrum, natural log), cropped or padded
    with the log floor to ``frames`` when given."""
    n_fft = int(round(rate * win_ms / 1000))
    hop = int(round(rate * hop_ms / 1000))
    signal = torch.from_numpy(np.pad(x, (0, max(0, n_fft - len(x)))).astype(np.float32))
    spec = torch.stft(signal, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().pow(2)  # [n_fft // 2 + 1, T]
    mel = torch.from_numpy(mel_filterbank(n_mels, n_fft, rate)) @ spec  # [n_mels, T]
    out = torch.log(mel + 1e-6).T.numpy()  # [T, n_mels]
    if frames is not None:
        out = out[:frames]
        if len(out) < frames:
            out = np.pad(out, ((0, frames - len(out)), (0, 0)), constant_values=float(np.log(1e-6)))
    return out.astype(np.float32)
