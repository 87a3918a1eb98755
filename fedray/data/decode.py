"""Column decoding with row-level checks, shared by the driver's validation and the clients' loading.

Every function takes one Arrow column of the rows at hand, the dataset row index of each (``rows``) and
their ids, and either returns the decoded values or raises :class:`DataError` naming the file, the row,
its id and the column. Checks are vectorised over the Arrow buffers wherever the format allows.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

# Audio features beyond this magnitude are sentinels or corruption (e.g. FLT_MAX fill values): they overflow
# float32 arithmetic in the tower or, through the standardisation statistics, flatten every other row.
AUDIO_LIMIT = 1e15
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_PNG = np.frombuffer(b"\x89PNG\r\n\x1a\n", dtype=np.uint8)
_PNG_CHANNELS = np.array([1, -1, 3, 3, 1, -1, 3])  # IHDR colour type -> channels (0 gray, 2 RGB, 3 palette, 4 LA, 6 RGBA)


class DataError(ValueError):
    """Unusable dataset; the message names the file and, for a row's problem, the row, its id and the column.

    ``row`` / ``column`` / ``client`` are kept as fields so callers can add context (e.g. the client holding
    the row) and so the error crosses Ray's process boundary whole.
    """

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None,
                 client: int | None = None) -> None:
        super().__init__(message)
        self.row, self.column, self.client = row, column, client

    def for_client(self, client: int) -> DataError:
        """The same error, prefixed with the client that holds the row (client-side decoding)."""
        if self.client is not None:
            return self
        return type(self)(f"client {client}: {self}", row=self.row, column=self.column, client=client)


def row_error(path: str, row: int, column: str, problem: str, row_id: object = None) -> DataError:
    """``dataset file X, row R (id 'I'), column 'C': problem``."""
    rid = f" (id {row_id!r})" if row_id is not None else ""
    return DataError(f"dataset file {path}, row {row}{rid}, column '{column}': {problem}", row=row, column=column)


def column_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array (table columns come chunked)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _fail(path: str, rows: np.ndarray, ids: Sequence[object] | None, i: int, column: str, problem: str) -> DataError:
    return row_error(path, int(rows[i]), column, problem, ids[i] if ids is not None else None)


def image_channels(mode: str) -> int:
    """1 for grayscale PIL modes, else 3 (alpha is dropped; palette images are colour)."""
    return 1 if mode in GRAY_MODES else 3


def image_headers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Width, height and channels of every PNG in a binary column, read from the IHDR chunk without
    decoding (vectorised over the Arrow buffers). Rows that are null, empty or not PNG get -1."""
    values = column_array(values).cast(pa.large_binary())  # one offset width: int64
    n = len(values)
    if n == 0:
        return (np.zeros(0, np.int64),) * 3
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8) if values.buffers()[2] is not None else np.zeros(0, np.uint8)
    start, length = offsets[:-1], np.diff(offsets)
    ok = (length >= 26) & ~np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    pos = np.where(ok, start, 0)[:, None]
    if len(data) < 26:
        data = np.pad(data, (0, 26))
    head = data[np.minimum(pos + np.arange(26), len(data) - 1)]  # [N, 26]
    ok &= (head[:, :8] == _PNG).all(axis=1)
    be = head[:, 16:24].astype(np.int64)
    width = (be[:, 0] << 24) | (be[:, 1] << 16) | (be[:, 2] << 8) | be[:, 3]
    height = (be[:, 4] << 24) | (be[:, 5] << 16) | (be[:, 6] << 8) | be[:, 7]
    colour = head[:, 25].astype(np.int64)
    channels = np.where(colour < len(_PNG_CHANNELS), _PNG_CHANNELS[np.minimum(colour, len(_PNG_CHANNELS) - 1)], -1)
    return np.where(ok, width, -1), np.where(ok, height, -1), np.where(ok, channels, -1)


def check_image_headers(values: pa.Array, rows: np.ndarray, path: str, channels: int, size: int,
                        ids: Sequence[object] | None = None) -> None:
    """Every image is present, square ``size`` x ``size`` with ``channels`` channels (headers only: PNG from
    the bytes, vectorised; other formats through Pillow's lazy open, which reads no pixels)."""
    values = column_array(values)
    width, height, chans = image_headers(values)
    nulls = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    for i in np.flatnonzero(width < 0):  # not a PNG header: null, empty, JPEG, or garbage
        if nulls[i]:
            raise _fail(path, rows, ids, i, "image", "null image bytes")
        data = values[int(i)].as_py()
        if not data:
            raise _fail(path, rows, ids, i, "image", "empty image bytes")
        try:
            img = Image.open(io.BytesIO(data))
        except Exception as err:  # Pillow raises several unrelated types for bad bytes
            raise _fail(path, rows, ids, i, "image", f"cannot decode image ({_why(err)})") from None
        width[i], height[i], chans[i] = img.width, img.height, image_channels(img.mode)
    _check_shapes(width, height, chans, rows, path, channels, size, ids)


def _check_shapes(width: np.ndarray, height: np.ndarray, chans: np.ndarray, rows: np.ndarray, path: str,
                  channels: int, size: int, ids: Sequence[object] | None) -> None:
    bad = np.flatnonzero((width != size) | (height != size))
    if len(bad):
        i = bad[0]
        raise _fail(path, rows, ids, i, "image", f"image is {width[i]}x{height[i]}, but the dataset's images are "
                                                 f"{size}x{size} (every row must have the first row's square size)")
    bad = np.flatnonzero(chans != channels)
    if len(bad):
        i = bad[0]
        kind = {1: "grayscale", 3: "colour"}
        raise _fail(path, rows, ids, i, "image", f"{kind.get(int(chans[i]), 'unknown')} image among "
                                                 f"{kind[channels]} ones (the first row's); convert all images "
                                                 "to one mode")


def decode_image(data: bytes | None, path: str, row: int, channels: int | None = None,
                 row_id: object = None) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 [C, H, W]: grayscale modes give C = 1, everything else RGB (C = 3).
    ``channels``: the dataset's channel count; an image of the other kind is an error."""
    if not data:
        raise row_error(path, row, "image", "null image bytes" if data is None else "empty image bytes", row_id)
    try:
        with Image.open(io.BytesIO(data)) as img:
            c = image_channels(img.mode)
            if channels is not None and c != channels:
                kind = {1: "grayscale", 3: "colour"}
                raise row_error(path, row, "image", f"{kind[c]} image among {kind[channels]} ones (the first "
                                                    "row's); convert all images to one mode", row_id)
            arr = np.asarray(img.convert("L" if c == 1 else "RGB"))
    except DataError:
        raise
    except Exception as err:  # Pillow raises several unrelated types for bad bytes
        raise row_error(path, row, "image", f"cannot decode image ({_why(err)})", row_id) from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def _why(err: Exception) -> str:
    if isinstance(err, UnidentifiedImageError):  # its text is a BytesIO repr
        return "not a PNG, JPEG or other known image format"
    return f"{type(err).__name__}: {err}"


def decode_images(values: pa.Array, rows: np.ndarray, path: str, channels: int, size: int,
                  ids: Sequence[object] | None = None) -> np.ndarray:
    """Decode a whole image column to uint8 [N, C, size, size], checking every row's mode and size."""
    out = np.empty((len(values), channels, size, size), dtype=np.uint8)
    for i, data in enumerate(values.to_pylist()):
        img = decode_image(data, path, int(rows[i]), channels, ids[i] if ids is not None else None)
        if img.shape[1:] != (size, size):
            raise _fail(path, rows, ids, i, "image", f"image is {img.shape[2]}x{img.shape[1]}, but the dataset's "
                                                     f"images are {size}x{size} (every row must have the first "
                                                     "row's square size)")
        out[i] = img
    return out


def audio_array(values: pa.Array, rows: np.ndarray, path: str, shape: tuple[int, int],
                ids: Sequence[object] | None = None) -> np.ndarray:
    """A list<list<float>> column as float32 [N, frames, features], vectorised: every row present, of
    ``shape``, with finite values of magnitude at most :data:`AUDIO_LIMIT`."""
    frames, features = shape
    values = column_array(values).cast(pa.large_list(pa.large_list(pa.float32())))
    n = len(values)
    outer = _lengths(values)  # -1 for a null row
    bad = np.flatnonzero(outer != frames)
    if len(bad):
        i = bad[0]
        got = "null" if outer[i] < 0 else f"{outer[i]} frames"
        raise _fail(path, rows, ids, i, "audio", f"expected {frames} x {features} (frames x features), got {got}")
    inner = values.values.slice(values.offsets[0].as_py(), n * frames)
    inner_len = _lengths(inner)
    bad = np.flatnonzero(inner_len != features)
    if len(bad):
        i = bad[0] // frames
        got = "a null frame" if inner_len[bad[0]] < 0 else f"a frame of {inner_len[bad[0]]} features"
        raise _fail(path, rows, ids, i, "audio", f"expected {frames} x {features} (frames x features), got {got} "
                                                 f"(frame {bad[0] % frames})")
    flat = inner.values.slice(inner.offsets[0].as_py(), n * frames * features)
    if flat.null_count:
        i = int(np.flatnonzero(np.asarray(flat.is_null().to_numpy(zero_copy_only=False)))[0]) // (frames * features)
        raise _fail(path, rows, ids, i, "audio", "null value")
    x = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, frames, features)  # writable copy
    bad_value = ~np.isfinite(x) | (np.abs(x) > AUDIO_LIMIT)
    if bad_value.any():
        i = int(np.flatnonzero(bad_value.any(axis=(1, 2)))[0])
        v = x[i][bad_value[i]][0]
        problem = f"non-finite value {v}" if not np.isfinite(v) else f"value {v:.3g} beyond +/-{AUDIO_LIMIT:g}"
        raise _fail(path, rows, ids, i, "audio", f"{problem} (audio features must be finite and of sane magnitude)")
    return x


def _lengths(values: pa.Array) -> np.ndarray:
    """Per-row list lengths, -1 for null rows."""
    lengths = pc.list_value_length(values).fill_null(-1)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def captions(values: pa.Array, rows: np.ndarray, path: str, caption: int,
             ids: Sequence[object] | None = None) -> list[str]:
    """The caption each row uses (``caption``, or the row's last if it has fewer), checked: no null or empty
    caption list, no null or blank caption (vectorised)."""
    values = column_array(values).cast(pa.large_list(pa.large_string()))
    lengths = _lengths(values)
    bad = np.flatnonzero(lengths <= 0)
    if len(bad):
        i = bad[0]
        raise _fail(path, rows, ids, i, "text", "null caption list" if lengths[i] < 0 else "empty caption list")
    offsets = np.asarray(values.offsets.to_numpy(), dtype=np.int64)[:-1]
    picked = pc.take(values.values, pa.array(offsets + np.minimum(caption, lengths - 1)))
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(picked)), 0).fill_null(True)
    bad = np.flatnonzero(np.asarray(blank.to_numpy(zero_copy_only=False)))
    if len(bad):
        i = bad[0]
        which = f"caption {min(caption, lengths[i] - 1)} (data.caption={caption})"
        problem = "is null" if not picked[int(i)].is_valid else "is empty"
        raise _fail(path, rows, ids, i, "text", f"{which} {problem}; every row needs a non-empty caption")
    return picked.to_pylist()
