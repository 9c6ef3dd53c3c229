"""Storage interface: Delta tables by layer and name, on delta-spark or delta-rs (see docs/storage.md)."""

from cdp_spark.lake._model import CommitResult, Txn
from cdp_spark.lake.lake import Lake

__all__ = ["CommitResult", "Lake", "Txn"]
