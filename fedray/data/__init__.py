"""Data: Parquet datasets (embedded or local), decoding into client shards, partitioning."""

from fedray.data.dataset import DataError, DatasetInfo, Shard, load_rows, open_dataset, split_rows

__all__ = ["DataError", "DatasetInfo", "Shard", "load_rows", "open_dataset", "split_rows"]
