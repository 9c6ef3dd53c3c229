"""The storage interface every stage reads and writes tables through.

Tables live at ``<root>/<layer>/<name>`` and are Delta tables written by one of two engines that
speak the same protocol: ``delta-spark`` (Delta's JVM classes in the session) or ``delta-rs``
(Spark writes Parquet, the driver commits with the ``deltalake`` package). See docs/storage.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from cdp_spark.errors import ConfigError, StorageError
from cdp_spark.lake._files import FileStore, normalize_root
from cdp_spark.lake._model import META_OPERATION, META_RUN_ID, META_STAGE, CommitContext, CommitResult, Txn, parse_user_metadata
from cdp_spark.session import detect_capabilities

log = logging.getLogger(__name__)

ENGINES = ("auto", "delta-spark", "delta-rs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


class _Engine(Protocol):
    name: str

    def exists(self, uri: str) -> bool: ...
    def version(self, uri: str) -> int | None: ...
    def txn_version(self, uri: str, app_id: str) -> int | None: ...
    def history(self, uri: str, table: str, limit: int | None) -> list[dict[str, Any]]: ...
    def read(self, uri: str, table: str, version: int | None, timestamp: datetime | None) -> DataFrame: ...
    def create(self, uri: str, schema: StructType, partition_by: Sequence[str], ctx: CommitContext) -> CommitResult: ...
    def append(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def overwrite(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def overwrite_partitions(self, uri: str, df: DataFrame, txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def upsert(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def replace(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def read_added(self, uri: str, table: str, since_version: int | None, version: int) -> DataFrame: ...
    def delete(self, uri: str, predicate: str, txn: Txn | None, ctx: CommitContext) -> CommitResult: ...
    def vacuum(self, uri: str, retention_hours: int, ctx: CommitContext) -> list[str]: ...


def _make_engine(spark: SparkSession, engine: str) -> _Engine:
    if engine not in ENGINES:
        raise ConfigError(f"engines.storage: unknown storage engine {engine!r}; use one of {', '.join(ENGINES)}")
    has_delta_jvm = detect_capabilities(spark).delta
    if engine == "delta-spark" and not has_delta_jvm:
        raise ConfigError(
            "engines.storage: 'delta-spark' needs Delta Lake's JVM classes (io.delta.tables.DeltaTable) on the "
            "session classpath; add the delta-spark jar via spark.jars, or use 'delta-rs' / 'auto'"
        )
    if engine == "delta-spark" or (engine == "auto" and has_delta_jvm):
        from cdp_spark.lake._delta_spark import DeltaSparkEngine

        chosen: _Engine = DeltaSparkEngine(spark)
    else:
        from cdp_spark.lake._delta_rs import DeltaRsEngine

        chosen = DeltaRsEngine(spark)
    if engine == "auto":
        log.info("storage engine auto -> %s (delta JVM classes %s)", chosen.name, "present" if has_delta_jvm else "absent")
    return chosen


def _checked(kind: str, value: str) -> str:
    if not _NAME.match(value or ""):
        raise StorageError(f"invalid {kind} {value!r}: use letters, digits, '_' and '-', starting with a letter or digit")
    return value


def _as_utc(timestamp: datetime | str) -> datetime:
    """A datetime in UTC; naive values and ISO strings without an offset are taken as UTC."""
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError as exc:
            raise StorageError(f"timestamp {timestamp!r} is not ISO-8601 (e.g. 2026-11-22T10:00:00Z)") from exc
    if timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=timezone.utc)
    return timestamp.astimezone(timezone.utc)


class Lake:
    """Delta tables addressed by layer and name under a lakehouse root.

    Every commit records ``run_id`` and ``stage`` (see :meth:`with_context`) in its commit info.
    """

    def __init__(
        self,
        spark: SparkSession,
        root: str,
        *,
        engine: str = "auto",
        run_id: str | None = None,
        stage: str | None = None,
    ) -> None:
        self._spark = spark
        self._root = normalize_root(root)
        self._engine = _make_engine(spark, engine)
        self.run_id = run_id
        self.stage = stage

    @property
    def engine_name(self) -> str:
        """``"delta-rs"`` or ``"delta-spark"``."""
        return self._engine.name

    @property
    def root(self) -> str:
        return self._root

    def with_context(self, *, run_id: str | None = None, stage: str | None = None) -> Lake:
        """A Lake on the same root and engine whose commits carry this run id / stage (None keeps the current one)."""
        clone = object.__new__(Lake)
        clone._spark, clone._root, clone._engine = self._spark, self._root, self._engine
        clone.run_id = run_id if run_id is not None else self.run_id
        clone.stage = stage if stage is not None else self.stage
        return clone

    # ------------------------------------------------------------------ addressing
    def path(self, layer: str, name: str) -> str:
        """``<root>/<layer>/<name>``; names are letters, digits, ``_`` and ``-`` (not leading ``_``)."""
        return f"{self._layer_uri(layer)}/{_checked('table name', name)}"

    def _layer_uri(self, layer: str) -> str:
        return f"{self._root}/{_checked('layer', layer)}"

    def _label(self, layer: str, name: str) -> str:
        return f"{layer}.{name}"

    def _ctx(self, layer: str, name: str, operation: str) -> CommitContext:
        return CommitContext(self._label(layer, name), self.run_id, self.stage, operation)

    def exists(self, layer: str, name: str) -> bool:
        """Whether a Delta table exists at the address."""
        return self._engine.exists(self.path(layer, name))

    def tables(self, layer: str) -> list[str]:
        """Names of the Delta tables in a layer, sorted."""
        layer_uri = self._layer_uri(layer)
        return sorted(n for n in FileStore(layer_uri).list_dirs("") if _NAME.match(n) and self._engine.exists(f"{layer_uri}/{n}"))

    def version(self, layer: str, name: str) -> int | None:
        """Current table version, None if the table does not exist."""
        return self._engine.version(self.path(layer, name))

    def txn_version(self, layer: str, name: str, app_id: str) -> int | None:
        """Last committed application-transaction version for ``app_id`` (None if never, or no table)."""
        return self._engine.txn_version(self.path(layer, name), app_id)

    # ------------------------------------------------------------------ read
    def read(
        self,
        layer: str,
        name: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
    ) -> DataFrame:
        """The table (latest, or as of a version or a timestamp) as a DataFrame in the table's column order."""
        if version is not None and timestamp is not None:
            raise StorageError(f"read {self._label(layer, name)}: pass version or timestamp, not both")
        ts = _as_utc(timestamp) if timestamp is not None else None
        return self._engine.read(self.path(layer, name), self._label(layer, name), version, ts)

    def read_added(self, layer: str, name: str, *, since_version: int | None, version: int) -> DataFrame:
        """Rows in data files live at ``version`` but not at ``since_version`` (None: every row at ``version``).

        On an append-only table (bronze) these are the rows appended in between. A file that a DELETE
        rewrote (erasure, retention) counts as new, so its remaining rows are returned once more:
        consumers must treat rows they have already seen as re-deliveries. Only the file lists of the
        two versions are needed, so it works after VACUUM as long as the log entries are kept.
        """
        if since_version is not None and since_version > version:
            raise StorageError(f"read_added {self._label(layer, name)}: since_version {since_version} is after version {version}")
        return self._engine.read_added(self.path(layer, name), self._label(layer, name), since_version, version)

    def history(self, layer: str, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first: version, timestamp (UTC datetime), operation, run_id, stage, delta_operation.

        ``operation`` is the Lake method that made the commit (``append``, ``upsert``...) or, for
        commits made outside cdp-spark, Delta's own operation name.
        """
        out = []
        for entry in self._engine.history(self.path(layer, name), self._label(layer, name), limit):
            meta = parse_user_metadata(entry.get("userMetadata"))
            out.append(
                {
                    "version": entry.get("version"),
                    "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, tz=timezone.utc),
                    "operation": meta.get(META_OPERATION) or entry.get("operation"),
                    "run_id": meta.get(META_RUN_ID),
                    "stage": meta.get(META_STAGE),
                    "delta_operation": entry.get("operation"),
                }
            )
        return out

    # ------------------------------------------------------------------ writes
    def create(self, layer: str, name: str, schema: StructType, *, partition_by: Sequence[str] = ()) -> CommitResult:
        """Create an empty table; a no-op (returning the current version) if it exists."""
        uri, label = self.path(layer, name), self._label(layer, name)
        if self._engine.exists(uri):
            log.info("create %s: table exists at %s, nothing to do", label, uri)
            return CommitResult(label, self._engine.version(uri), False, 0, 0, 0)
        return self._engine.create(uri, schema, tuple(partition_by), self._ctx(layer, name, "create"))

    def append(
        self, layer: str, name: str, df: DataFrame, *, partition_by: Sequence[str] = (), txn: Txn | None = None
    ) -> CommitResult:
        """Append rows; columns the table lacks are added (schema merge). Creates the table if missing."""
        return self._engine.append(self.path(layer, name), df, tuple(partition_by), txn, self._ctx(layer, name, "append"))

    def overwrite(
        self, layer: str, name: str, df: DataFrame, *, partition_by: Sequence[str] = (), txn: Txn | None = None
    ) -> CommitResult:
        """Replace all rows and the schema. ``partition_by=()`` keeps an existing table's partitioning."""
        return self._engine.overwrite(self.path(layer, name), df, tuple(partition_by), txn, self._ctx(layer, name, "overwrite"))

    def overwrite_partitions(self, layer: str, name: str, df: DataFrame, *, txn: Txn | None = None) -> CommitResult:
        """Replace only the partitions present in ``df`` of an existing partitioned table."""
        return self._engine.overwrite_partitions(self.path(layer, name), df, txn, self._ctx(layer, name, "overwrite_partitions"))

    def upsert(self, layer: str, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None) -> CommitResult:
        """Merge by ``keys``: matching rows are replaced, others inserted. Creates the table if missing.

        Incoming keys must be unique (rows with a NULL key never match and are inserted).
        """
        if not keys:
            raise StorageError(f"upsert into {self._label(layer, name)}: keys must name at least one column")
        return self._engine.upsert(self.path(layer, name), df, tuple(keys), txn, self._ctx(layer, name, "upsert"))

    def replace(self, layer: str, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None) -> CommitResult:
        """In one commit, every row whose ``keys`` appear in ``df`` is removed and ``df``'s rows are added.

        Unlike :meth:`upsert`, ``df`` may hold any number of rows per key (e.g. all identifiers of a
        record): the key's old rows are replaced as a group. Creates the table if missing.
        """
        if not keys:
            raise StorageError(f"replace in {self._label(layer, name)}: keys must name at least one column")
        return self._engine.replace(self.path(layer, name), df, tuple(keys), txn, self._ctx(layer, name, "replace"))

    def delete(self, layer: str, name: str, predicate: str, *, txn: Txn | None = None) -> CommitResult:
        """Delete the rows where the Spark SQL ``predicate`` is true."""
        return self._engine.delete(self.path(layer, name), predicate, txn, self._ctx(layer, name, "delete"))

    def vacuum(self, layer: str, name: str, *, retention_hours: int) -> list[str]:
        """Delete data files not referenced by versions newer than ``retention_hours``; returns them.

        Time travel to versions older than the retention stops working for vacuumed files.
        """
        if retention_hours < 0:
            raise StorageError(f"vacuum {self._label(layer, name)}: retention_hours must be >= 0, got {retention_hours}")
        if retention_hours < 168:
            log.warning("vacuum %s with retention %dh < 7 days: readers of older versions may fail", self._label(layer, name), retention_hours)
        return self._engine.vacuum(self.path(layer, name), retention_hours, self._ctx(layer, name, "vacuum"))
