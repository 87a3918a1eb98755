"""Progress of long work: round r of N, run i of n, and the time left.

On an interactive terminal, a tqdm bar per run (one line, redrawn). Otherwise (Ray Jobs, log files,
pipes) one line per round, with seconds counted from the command's start. Rounds arrive as the
records a run writes to ``metrics.jsonl`` (``run_experiment(on_record=...)``); the total comes from
the schedule, so the display knows the horizon before the first round ends.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def round_line(r: dict[str, Any], total: int | None = None, elapsed: float | None = None,
               eta: float | None = None, tag: str | None = None) -> str:
    """One round as one line: ``[lw 2/3] stage 1 round   3/24 | loss 3.4 | i2t R@1 0.1 t2i R@1 0.1 | 12.3s``.

    ``elapsed`` defaults to the run's own clock (``time/elapsed_s``); ``eta`` (seconds) is appended when known.
    """
    loss = r.get("train/loss")
    of = f"/{total}" if total else ""
    parts = [f"[{tag or r['method']}] stage {r['stage']} round {r['round']:>3}{of}",
             f"loss {loss:.4f}" if loss is not None else "loss   n/a"]
    if r.get("eval/accuracy") is not None:
        parts.append(f"acc {r['eval/accuracy']:.3f} macro-F1 {r.get('eval/macro_f1', math.nan):.3f}")
    if r.get("eval/i2t_r1") is not None:
        parts.append(f"i2t R@1 {r['eval/i2t_r1']:.3f} t2i R@1 {r.get('eval/t2i_r1', math.nan):.3f}")
    if r.get("fault/client_failures") or r.get("fault/stragglers"):
        parts.append(f"faults: {r.get('fault/client_failures', 0)} lost, {r.get('fault/stragglers', 0)} dropped, "
                     f"{r.get('fault/retries', 0)} retries")
    parts.append(f"{r['time/elapsed_s'] if elapsed is None else elapsed:.1f}s")
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    return " | ".join(parts)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Shows each run's rounds against its total, which run of how many, and an ETA.

    ``begin`` starts a run (``total`` rounds, run ``index`` of ``count``), ``record`` takes each
    round's record, ``note`` prints a line without breaking a bar, ``close`` ends the display.
    ``tty`` (default: whether ``stream`` is a terminal) picks the bar or the line format.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, start: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.clock = clock
        self.start = clock() if start is None else start  # the command's start: lines count from here
        self.label, self.total, self.parallel = "", 0, 1
        self._bar: Any = None
        self._seconds: list[float] = []  # wall seconds per step of this run (a resumed run: since it resumed)
        self._last = self.start

    def begin(self, label: str, total: int, index: int = 1, count: int = 1, unit: str = "round",
              parallel: int = 1) -> None:
        """A new run (or measurement) of ``total`` steps; ``index``/``count`` say which of how many;
        ``parallel`` steps run at once (a sweep's concurrent trials), which divides the time left."""
        self.close()
        self.label = f"{label} {index}/{count}" if count > 1 else label
        self.total, self.parallel, self._seconds = total, max(1, parallel), []
        self._last = self.clock()
        if self.tty:
            from tqdm import tqdm  # only on a terminal

            self._bar = tqdm(total=total, desc=f"[{self.label}]", unit=unit, file=self.stream, dynamic_ncols=True,
                             leave=True, bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} {postfix}")

    def record(self, r: dict[str, Any]) -> None:
        """One finished round (a ``metrics.jsonl`` record)."""
        now = self.clock()
        done = int(r["round"])
        # The first round's wall time includes start-up (Ray, actors, data): use its own training time.
        seconds = r.get("time/round_s") if not self._seconds else None
        self._seconds.append(float(seconds) if isinstance(seconds, (int, float)) else now - self._last)
        self._last = now
        eta = self.eta(done)
        if self._bar is None:
            print(round_line(r, self.total or None, now - self.start, eta, self.label or None), file=self.stream,
                  flush=True)
            return
        self._bar.set_description_str(f"[{self.label}] stage {r['stage']}", refresh=False)
        metrics = round_line(r).split(" | ")[1:-1]  # loss, recall, faults: not the tag and the seconds
        self._bar.set_postfix_str(" | ".join(metrics + ([f"ETA {duration(eta)}"] if eta is not None else [])),
                                  refresh=False)
        self._bar.update(done - self._bar.n)

    def step(self, text: str, done: int) -> None:
        """A generic step (``fedray resources``: a measured stage): ``done`` of ``total`` and what it was."""
        now = self.clock()
        self._seconds.append(now - self._last)
        self._last = now
        eta = self.eta(done)
        left = f" | ETA {duration(eta)}" if eta is not None else ""
        if self._bar is None:
            print(f"[{self.label}] {done}/{self.total} {text} | {now - self.start:.1f}s{left}", file=self.stream,
                  flush=True)
            return
        self._bar.set_postfix_str(text + left, refresh=False)
        self._bar.update(done - self._bar.n)

    def status(self, text: str) -> None:
        """What is happening now, without a step done: the bar's postfix, or a line of its own."""
        if self._bar is None:
            print(f"[{self.label}] {text} | {self.clock() - self.start:.1f}s", file=self.stream, flush=True)
        else:
            self._bar.set_postfix_str(text)

    def eta(self, done: int) -> float | None:
        """Seconds left: the mean time of this run's rounds so far times the rounds left (None when unknown)."""
        if not self.total or not self._seconds or done >= self.total:
            return None
        left = self.total - done
        return sum(self._seconds) / len(self._seconds) * left / min(self.parallel, left)

    def note(self, text: str) -> None:
        """A line of its own (a warning, a result), printed above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
