"""Data: Parquet datasets (embedded or local), decoding into client shards, partitioning.

Names are imported on first use: ``fedray.data.storage`` (used by run directories and the CLI's
checks) must not pull in pyarrow and torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedray.data.dataset import DataError, DatasetInfo, Shard, load_rows, open_dataset, split_rows

__all__ = ["DataError", "DatasetInfo", "Shard", "load_rows", "open_dataset", "split_rows"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("fedray.data.dataset"), name)
    raise AttributeError(f"module 'fedray.data' has no attribute {name!r}")
