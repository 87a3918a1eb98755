"""A sweep's progress on the driver: trials finished of how many, each trial's rounds against its total.

A Tune callback feeds :class:`fedray.progress.Progress` (a bar on a terminal, lines otherwise); Tune's
own status tables are off (``verbose=0``), so a 2-trial sweep prints a handful of lines.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune

from fedray.progress import Progress
from fedray.schedules import build_schedule
from fedray.tune.spec import SweepSpec, trial_config


class SweepProgress(tune.Callback):
    """One line per trial round (or a bar's postfix) and one per finished trial."""

    def __init__(self, display: Progress, spec: SweepSpec, base: dict[str, Any], trials: int,
                 concurrency: int = 1) -> None:
        self.display, self.spec, self.base = display, spec, base
        self.finished = 0
        self._rounds: dict[str, int] = {}
        display.begin(spec.name, trials, unit="trial", parallel=concurrency)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment state: the terminal stays behind (a restored copy is
        silent)."""
        return self.__dict__ | {"display": None}

    def _label(self, trial: Any) -> str:
        shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted((trial.config or {}).items()))
        return f"trial {trial.trial_id}" + (f" ({shown})" if shown else "")

    def _total(self, trial: Any) -> int:
        if trial.trial_id not in self._rounds:
            cfg = trial_config(self.base, trial.config or {})
            self._rounds[trial.trial_id] = sum(s.rounds for s in build_schedule(cfg))
        return self._rounds[trial.trial_id]

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if self.display is None:
            return
        value = result.get(self.spec.metric)
        shown = f"{self.spec.metric} {value:.3f}" if isinstance(value, float) and math.isfinite(value) else ""
        text = f"{self._label(trial)} round {result.get('round', '?')}/{self._total(trial)}" + (
            f" | {shown}" if shown else "")
        self.display.status(text)

    def _ended(self, trial: Any, how: str) -> None:
        self.finished += 1
        if self.display is None:
            return
        self.display.step(f"{self._label(trial)} {how}", self.finished)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial, "finished")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial, "failed")
