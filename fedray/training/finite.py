"""Non-finite values stop a run: a NaN loss, update or embedding never becomes a plausible-looking summary."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

HINT = "lower the learning rates (train.lr), or check the data for extreme values"


class NonFiniteError(ValueError):
    """A NaN or infinity in a loss, a tensor or an embedding; says what, and where it is known (round, client).

    Raised where the value is computed (which may not know the round or client) and re-raised by the caller
    with :meth:`located`, which adds them. Pickles with its fields, so it crosses Ray's process boundary whole.
    """

    def __init__(self, what: str, value: str = "nan", round: int | None = None, client: int | None = None,
                 step: int | None = None, hint: str = HINT) -> None:
        self.what = what  # e.g. "train/loss", "update tensor 'image.block.0.attn.q.weight' (group image.block.0)"
        self.value = value  # what was found: "nan", "inf", "3 of 4096 values non-finite"
        self.round = round  # 1-based, as in progress lines and metrics.jsonl
        self.client = client
        self.step = step  # local step within the client's round
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in (("round", self.round), ("client", self.client),
                                                    ("local step", self.step)) if v is not None)
        return f"non-finite {self.what} ({self.value}){' in ' + where if where else ''}; {self.hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.what, self.value, self.round, self.client, self.step, self.hint)

    def located(self, **where: Any) -> NonFiniteError:
        """The same error with ``round=``/``client=``/``step=`` filled in (keeps the ones already known)."""
        fields = {k: getattr(self, k) for k in ("what", "value", "round", "client", "step", "hint")}
        fields.update({k: v for k, v in where.items() if fields[k] is None})
        return type(self)(**fields)


def check_finite(value: float | torch.Tensor, what: str, **where: Any) -> None:
    """Raise :class:`NonFiniteError` if the scalar ``value`` (a loss) is NaN or infinite."""
    v = float(value)
    if not math.isfinite(v):
        raise NonFiniteError(what, repr(v), **where)


def first_non_finite(tensors: Mapping[str, torch.Tensor | np.ndarray]) -> tuple[str, str] | None:
    """(name, description) of the first tensor, in name order, holding NaN or infinity; None if all are finite."""
    for name in sorted(tensors):
        t = torch.as_tensor(tensors[name])
        if not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            return name, f"{int(bad.sum())} of {t.numel()} values non-finite"
    return None


def check_tensors(tensors: Mapping[str, torch.Tensor | np.ndarray], what: str,
                  group_of: Callable[[str], str] | None = None, **where: Any) -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite tensor (and its layer group) of ``tensors``.

    ``what`` says whose tensors they are ("update", "global model"); ``group_of`` maps a tensor name to its
    layer group (``MultimodalModel.group_of``).
    """
    found = first_non_finite(tensors)
    if found is not None:
        name, desc = found
        group = f" (group {group_of(name)})" if group_of is not None else ""
        raise NonFiniteError(f"{what} tensor '{name}'{group}", desc, **where)
