"""Run directories: created fresh, written atomically, never overwriting an earlier run.

``summary.json`` is written last and only on success; a failed run leaves ``FAILED`` instead,
so nothing half-written looks like a finished run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedray.config.schema import StorageConfig
from fedray.data import storage as st


CLIENTS = "clients.jsonl"  # one row per client per round it took part in


class OutputError(ValueError):
    """The output location cannot be used."""


# mkstemp creates files 0600; run files get the mode a plain open() would give them (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
# What an interrupted atomic write leaves behind: ".<name>.<8 random chars>" (tempfile.mkstemp's pattern).
_STRAY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")


class RunDir:
    """A run's output directory on local disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: list[str] = []
        self._lines: dict[str, list[str]] = {}  # appended JSON lines per file (object stores rewrite the file)

    @classmethod
    def create(cls, out: str | None, name: str, root: str = "runs", storage: StorageConfig | None = None) -> "RunDir":
        """Claim ``out`` (local or s3://; must be absent or empty) or a fresh ``<root>/<name>-<timestamp>``."""
        if out is not None and st.is_s3(out):
            return S3RunDir.claim(out, storage)
        if out is not None:
            path = check_out(out)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError(f"--out {out}: cannot create it ({err.strerror})") from None
            _check_writable(path)
            return cls(path)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"run root {root}: cannot create it ({err.strerror})") from None
        for i in range(1000):
            path = Path(root) / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
            try:
                path.mkdir()  # exclusive: two runs started in the same second get different dirs
            except FileExistsError:
                continue
            except OSError as err:
                raise OutputError(f"run root {root}: cannot create a run directory ({err.strerror})") from None
            _check_writable(path)
            return cls(path)
        raise OutputError(f"run root {root}: too many runs named {name}-{stamp}")

    @classmethod
    def reopen(cls, path: str, rows: list[dict[str, Any]], storage: StorageConfig | None = None) -> "RunDir":
        """Continue an interrupted run in its own directory (``--resume``: the only reuse of a run dir).

        ``metrics.jsonl`` is rewritten to ``rows`` (the checkpoint's) and ``clients.jsonl`` to the same rounds,
        dropping what was done after the checkpoint.
        """
        if st.is_s3(path):
            run_dir: RunDir = S3RunDir(path.rstrip("/"), st.filesystem(storage))  # S3 writes are whole objects
        else:
            run_dir = cls(Path(path))
            _check_writable(run_dir.path)
            clean_strays(run_dir.path)  # a kill during a checkpoint write left its temp file
        run_dir.remove("FAILED")
        run_dir._rows = [json.dumps(r, default=_jsonable) for r in rows]
        run_dir.write_text("metrics.jsonl", "".join(line + "\n" for line in run_dir._rows))
        last = rows[-1]["round"] if rows else 0
        kept, before = [], run_dir.read_text(CLIENTS)
        if not before:  # nothing to cut back (a run dir of an older fedray has no clients.jsonl)
            return run_dir
        for line in before.splitlines():
            try:
                if json.loads(line)["round"] <= last:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # a line torn by the interruption: after the checkpoint
                continue
        run_dir._lines[CLIENTS] = kept
        run_dir.write_text(CLIENTS, "".join(line + "\n" for line in kept))
        return run_dir

    def discard(self) -> None:
        """Remove a run directory that nothing was written to yet (the run could not start)."""
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a binary file atomically (checkpoints, the final model)."""
        _atomic_write(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        """Write a file atomically (temp file in the same directory, then rename)."""
        _atomic_write(self.path / name, text.encode())

    def write_json(self, name: str, data: Any) -> None:
        self.write_text(name, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")

    def write_tree(self, name: str, fill: Callable[[Path], Any]) -> None:
        """Write directory ``name`` whole: ``fill(path)`` creates ``path`` (absent when called) and its files in a
        temp directory beside it, which then replaces ``name`` (left by an unfinished run's interrupted end)."""
        tmp = Path(tempfile.mkdtemp(dir=self.path, prefix=f".{name}."))
        try:
            fill(tmp / name)
            for f in (tmp / name).rglob("*"):  # writers such as save_pretrained may create files 0600
                if f.is_file():
                    os.chmod(f, FILE_MODE)
            target = self.path / name
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def append_row(self, row: dict[str, Any]) -> None:
        """Add one metrics row; ``metrics.jsonl`` is rewritten atomically so it is never torn."""
        self._rows.append(json.dumps(row, default=_jsonable))
        self.write_text("metrics.jsonl", "\n".join(self._rows) + "\n")

    def append_lines(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Append JSON lines (per-client rows: many per round, so appended, not rewritten; a line torn by a crash
        lies after the last checkpoint and is dropped on resume)."""
        with open(self.path / name, "a") as f:
            f.writelines(json.dumps(r, default=_jsonable) + "\n" for r in rows)

    def read_text(self, name: str) -> str:
        """A file's text, or "" when it does not exist."""
        path = self.path / name
        return path.read_text() if path.exists() else ""

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class S3RunDir(RunDir):
    """A run directory under an s3:// prefix: each file is one PUT, which S3 makes visible atomically."""

    def __init__(self, uri: str, fs: Any) -> None:
        super().__init__(uri)  # type: ignore[arg-type]  # ``path`` is the URI here
        self.fs = fs

    @classmethod
    def claim(cls, uri: str, storage: StorageConfig | None) -> "S3RunDir":
        """Check the bucket is reachable and the prefix holds no objects."""
        uri = uri.rstrip("/")
        fs = st.filesystem(storage)
        bucket, _, prefix = st.strip(uri).partition("/")
        if not prefix:
            raise OutputError(f"--out {uri}: name a prefix inside the bucket, e.g. s3://{bucket}/runs/NAME")
        try:
            existing = fs.find(st.strip(uri), maxdepth=None)
        except Exception as err:  # noqa: BLE001 - explain() names bucket and endpoint, never credentials
            raise OutputError(str(st.explain(uri, err, storage, what="--out"))) from None
        if existing:
            raise OutputError(f"--out {uri}: exists and is not empty; fedray never overwrites an earlier run")
        return cls(uri, fs)

    def write_text(self, name: str, text: str) -> None:
        self.fs.pipe_file(f"{st.strip(self.path)}/{name}", text.encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(f"{st.strip(self.path)}/{name}", data)

    def write_tree(self, name: str, fill: Callable[[Path], Any]) -> None:
        """``fill`` writes the directory locally (a temp dir), then each file becomes one object under ``name/``."""
        with tempfile.TemporaryDirectory(prefix="fedray-tree-") as tmp:
            local = Path(tmp) / name
            fill(local)
            for f in sorted(p for p in local.rglob("*") if p.is_file()):
                self.fs.pipe_file(f"{st.strip(self.path)}/{name}/{f.relative_to(local).as_posix()}", f.read_bytes())

    def append_lines(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Objects cannot be appended to: the file is written whole (one PUT) with every line so far."""
        lines = self._lines.setdefault(name, [])
        lines += [json.dumps(r, default=_jsonable) for r in rows]
        self.write_text(name, "".join(line + "\n" for line in lines))

    def read_text(self, name: str) -> str:
        key = f"{st.strip(self.path)}/{name}"
        return self.fs.cat_file(key).decode() if self.fs.exists(key) else ""

    def remove(self, name: str) -> None:
        key = f"{st.strip(self.path)}/{name}"
        if self.fs.exists(key):
            self.fs.rm_file(key)

    def discard(self) -> None:
        """Nothing to remove: claiming a prefix writes no object."""


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory, normal permissions, then rename: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_strays(path: Path) -> list[str]:
    """Remove temp files and directories that interrupted atomic writes left in a run directory; returns their
    names."""
    removed = []
    for entry in path.iterdir():
        if _STRAY.match(entry.name) and (entry.is_file() or entry.is_dir()):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return sorted(removed)


def check_out(out: str) -> Path:
    """A local ``--out`` must be absent or an empty directory (checked again, then claimed, by ``create``)."""
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if (path / "checkpoint.pt").is_file() and not (path / "summary.json").exists():
            hint = f"; it holds an interrupted run: continue it with `fedray run --resume {out}`"
        else:
            hint = "; choose a new --out (without one, runs go to runs/<name>-<timestamp>)"
        raise OutputError(f"--out {out}: exists and is not empty; fedray never overwrites an earlier run{hint}")
    return path


def _check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK):
        raise OutputError(f"output directory {path}: not writable")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
