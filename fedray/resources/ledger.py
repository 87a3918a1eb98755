"""The ledger: what clients spent, per stage and in total. Plain values, no torch.

:class:`Costs` holds exact bytes each way, training FLOPs and the largest peak training memory. Each field says
how values combine across clients of one round (``parallel``: they train at the same time) and across rounds
(``serial``): bytes and FLOPs add up both ways, a peak is the largest of its parts. A new figure (issue 11's
simulated seconds: the slowest client of a round, summed over rounds) is one more field with its two rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


def _rule(parallel: str = "sum", serial: str = "sum") -> Any:
    return {"parallel": parallel, "serial": serial}


_OPS = {"sum": lambda a, b: a + b, "max": max}


@dataclass(frozen=True)
class Costs:
    """Resources spent by some clients in some rounds."""

    bytes_to_clients: int = field(default=0, metadata=_rule())  # exchanged tensors + frozen-prefix deliveries
    bytes_from_clients: int = field(default=0, metadata=_rule())
    flops: int = field(default=0, metadata=_rule())  # training FLOPs (measured step x steps)
    peak_memory_bytes: int = field(default=0, metadata=_rule("max", "max"))  # largest peak of any client

    @property
    def comm_bytes(self) -> int:
        return self.bytes_to_clients + self.bytes_from_clients

    def _combine(self, other: Costs, how: str) -> Costs:
        return replace(self, **{f.name: _OPS[f.metadata[how]](getattr(self, f.name), getattr(other, f.name))
                                for f in fields(self)})

    def then(self, later: Costs) -> Costs:
        """These costs followed by ``later`` (rounds in sequence)."""
        return self._combine(later, "serial")

    @classmethod
    def parallel(cls, parts: Iterable[Costs]) -> Costs:
        """Clients of one round, side by side."""
        out = cls()
        for p in parts:
            out = out._combine(p, "parallel")
        return out


@dataclass(frozen=True)
class Ledger:
    """Costs of a run so far: in total and per stage (0-based stage index)."""

    total: Costs = field(default_factory=Costs)
    stages: dict[int, Costs] = field(default_factory=dict)

    def charge(self, stage: int, costs: Costs) -> Ledger:
        """A new ledger with one more round of ``costs`` in ``stage``."""
        return Ledger(self.total.then(costs), {**self.stages, stage: self.stages.get(stage, Costs()).then(costs)})

    def stage(self, stage: int) -> Costs:
        return self.stages.get(stage, Costs())

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint loads them with ``torch.load(weights_only=True)``)."""
        return {"total": asdict(self.total), "stages": {s: asdict(c) for s, c in self.stages.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        return cls(Costs(**data["total"]), {int(s): Costs(**c) for s, c in data["stages"].items()})
