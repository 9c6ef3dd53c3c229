"""delta-rs engine: Spark executors write Parquet, the driver commits Delta actions with ``deltalake``.

Write path: Spark writes the rows into ``<table>/_staging/<epoch_ms>-<uuid>/`` (Hive-style partition
directories), the driver lists the staged files, reads their Parquet footers for row counts, moves
them to ``<table>/<col>=<val>/part-<uuid>...parquet`` and commits Add (and Remove) actions in one
Delta transaction. Upsert and delete are copy-on-write: Spark finds the files holding matching rows
through ``_metadata.file_path``, rewrites them, and one commit swaps old files for new ones.
The driver only ever holds per-file metadata (paths, sizes, partition values, row counts).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import reduce
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.schema import Field
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from cdp_spark.errors import StorageError
from cdp_spark.faults import fault_point
from cdp_spark.lake._files import FileStore, native_uri, partition_values_of
from cdp_spark.lake._model import CommitContext, CommitResult, Txn
from cdp_spark.lake._schema import align, from_delta_json, merge_schemas, require_columns, to_delta_json

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
# Staging directories older than this are leftovers of crashed writes (no write runs this long).
STAGING_SAFETY_MARGIN_MS = 24 * 3600 * 1000
# Reader features whose files Spark can read as plain Parquet with the table schema.
_READABLE_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}
_FILE_COL = "_cdp_file"


@dataclass(frozen=True)
class _Staged:
    """Files a write put in their final place, not yet committed."""

    adds: list[AddAction]
    rows: int

    @property
    def paths(self) -> list[str]:
        return [a.path for a in self.adds]


@dataclass(frozen=True)
class _LiveFile:
    path: str  # relative, on-disk spelling (decoded from the log's URI encoding)
    size: int
    partition: tuple[Any, ...]  # typed partition values in partition-column order


class DeltaRsEngine:
    """Delta tables through delta-rs commits and Spark Parquet I/O."""

    name = "delta-rs"

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark

    # ------------------------------------------------------------------ metadata
    def exists(self, uri: str) -> bool:
        return DeltaTable.is_deltatable(native_uri(uri))

    def _load(self, uri: str, table: str) -> DeltaTable:
        try:
            return _open(uri, table)
        except TableNotFoundError as exc:
            raise StorageError(
                f"table {table} does not exist at {uri}; it is created by Lake.create, or by the first "
                "append/overwrite/upsert to it"
            ) from exc

    def _load_if_exists(self, uri: str) -> DeltaTable | None:
        return _open(uri, _label(uri)) if self.exists(uri) else None

    def version(self, uri: str) -> int | None:
        dt = self._load_if_exists(uri)
        return None if dt is None else dt.version()

    def txn_version(self, uri: str, app_id: str) -> int | None:
        dt = self._load_if_exists(uri)
        return None if dt is None else dt.transaction_version(app_id)

    def history(self, uri: str, table: str, limit: int | None) -> list[dict[str, Any]]:
        return self._load(uri, table).history(limit)

    # ------------------------------------------------------------------ read
    def read(self, uri: str, table: str, version: int | None, timestamp: datetime | None) -> DataFrame:
        dt = self._load(uri, table)
        try:
            if version is not None:
                dt.load_as_version(version)
            elif timestamp is not None:
                dt.load_as_version(timestamp)
        except (DeltaError, ValueError, OSError) as exc:
            at = f"version {version}" if version is not None else f"timestamp {timestamp.isoformat()}"  # type: ignore[union-attr]
            raise StorageError(
                f"table {table} at {uri} has no {at}: {exc}; see Lake.history for the versions still available"
            ) from exc
        _check_readable(dt, table)
        return self._read_files(uri, _spark_schema(dt), [f.path for f in _live_files(dt)])

    def read_added(self, uri: str, table: str, since_version: int | None, version: int) -> DataFrame:
        """Rows of the data files live at ``version`` that were not live at ``since_version``.

        For an append-only table these are exactly the rows appended after ``since_version``; a
        file rewritten by a DELETE counts as added (its surviving rows come back once).
        """
        dt = self._load(uri, table)
        try:
            dt.load_as_version(version)
            current = _live_files(dt)
            schema = _spark_schema(dt)
            _check_readable(dt, table)
            before: set[str] = set()
            if since_version is not None:
                dt.load_as_version(since_version)
                before = {f.path for f in _live_files(dt)}
        except (DeltaError, ValueError, OSError) as exc:
            raise StorageError(
                f"table {table} at {uri}: the file lists of versions {since_version} and {version} are not both readable: {exc}"
            ) from exc
        return self._read_files(uri, schema, [f.path for f in current if f.path not in before])

    def _read_files(self, uri: str, schema: StructType, rel_paths: Sequence[str], *, with_file: bool = False) -> DataFrame:
        """Spark DataFrame over the given data files of the table, in the table's column order.

        ``with_file`` adds the column ``_FILE_COL`` (the data file's URI) for copy-on-write.
        """
        columns = [F.col(f"`{n}`") for n in schema.fieldNames()]
        if not rel_paths:
            empty = self._spark.createDataFrame([], schema)
            return empty.withColumn(_FILE_COL, F.lit(None).cast("string")) if with_file else empty
        if with_file:
            columns.append(F.col("_metadata.file_path").alias(_FILE_COL))
        reader = self._spark.read.schema(schema).option("basePath", uri)
        return reader.parquet(*[f"{uri}/{p}" for p in rel_paths]).select(*columns)

    # ------------------------------------------------------------------ writes
    def create(self, uri: str, schema: StructType, partition_by: Sequence[str], ctx: CommitContext) -> CommitResult:
        require_columns(schema, partition_by, where=f"create {ctx.table} partition_by")
        try:
            create_table_with_add_actions(
                native_uri(uri),
                Schema.from_json(to_delta_json(schema)),
                [],
                mode="error",
                partition_by=list(partition_by),
                commit_properties=_commit_properties(ctx, None),
            )
        except DeltaError as exc:
            raise StorageError(f"could not create table {ctx.table} at {uri}: {exc}") from exc
        return CommitResult(ctx.table, self.version(uri), False, 0, 0, 0)

    def append(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        dt = self._load_if_exists(uri)
        if dt is None:
            return self._create_with(uri, df, partition_by, txn, ctx)
        if skipped := _skipped(dt, txn, ctx):
            return skipped
        parts = _partitioning(dt, partition_by, ctx)
        dt, schema = self._evolve(dt, df.schema, ctx)
        staged = self._stage(uri, align(df, schema, ctx.table), parts, schema)
        return self._commit(uri, dt, staged, [], "append", schema, parts, txn, ctx)

    def overwrite(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        dt = self._load_if_exists(uri)
        if dt is None:
            return self._create_with(uri, df, partition_by, txn, ctx)
        if skipped := _skipped(dt, txn, ctx):
            return skipped
        parts = _partitioning(dt, partition_by, ctx)
        require_columns(df.schema, parts, where=f"overwrite {ctx.table} (partition columns)")
        staged = self._stage(uri, df, parts, df.schema)
        # mode="overwrite": delta-rs removes every live file of the read snapshot in the same commit.
        return self._commit(uri, dt, staged, [], "overwrite", df.schema, parts, txn, ctx, implicit_removes=len(_live_files(dt)))

    def overwrite_partitions(self, uri: str, df: DataFrame, txn: Txn | None, ctx: CommitContext) -> CommitResult:
        dt = self._load(uri, ctx.table)
        if skipped := _skipped(dt, txn, ctx):
            return skipped
        parts = list(dt.metadata().partition_columns)
        if not parts:
            raise StorageError(f"overwrite_partitions on {ctx.table}: the table is not partitioned; use overwrite")
        require_columns(df.schema, parts, where=f"overwrite_partitions {ctx.table} (partition columns)")
        dt, schema = self._evolve(dt, df.schema, ctx)
        staged = self._stage(uri, align(df, schema, ctx.table), parts, schema)
        types = [schema[c].dataType for c in parts]
        replaced = {tuple(_typed(a.partition_values[c], t) for c, t in zip(parts, types)) for a in staged.adds}
        removes = [f for f in _live_files(dt) if f.partition in replaced]
        return self._commit(uri, dt, staged, removes, "append", schema, parts, txn, ctx)

    def upsert(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        return self._merge(uri, df, keys, txn, ctx, unique=True)

    def replace(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        return self._merge(uri, df, keys, txn, ctx, unique=False)

    def _merge(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext, *, unique: bool) -> CommitResult:
        """Rows of the table whose keys appear in ``df`` are replaced by ``df``'s rows, in one commit."""
        require_columns(df.schema, keys, where=f"{ctx.operation} {ctx.table} keys")
        dt = self._load_if_exists(uri)
        if dt is None:
            return self._create_with(uri, df, (), txn, ctx)
        if skipped := _skipped(dt, txn, ctx):
            return skipped
        _check_readable(dt, ctx.table)
        require_columns(_spark_schema(dt), keys, where=f"{ctx.operation} {ctx.table} keys (table)")
        parts = list(dt.metadata().partition_columns)
        dt, schema = self._evolve(dt, df.schema, ctx)
        live = _live_files(dt)
        # The incoming rows become new files as they are (updates and inserts alike); reading them
        # back from Parquet evaluates the caller's DataFrame exactly once.
        incoming = self._stage(uri, align(df, schema, ctx.table), parts, schema)
        try:
            source_keys = self._read_files(uri, schema, incoming.paths).select(*keys)
            if unique:
                _require_unique_keys(source_keys, keys, ctx.table)
            else:
                source_keys = source_keys.distinct()
            target = self._read_files(uri, schema, [f.path for f in live], with_file=True)
            matched = _files_matching(target.join(source_keys, list(keys), "left_semi"), live, parts)
            kept = self._read_files(uri, schema, [f.path for f in matched]).join(source_keys, list(keys), "left_anti")
            rewritten = self._stage(uri, kept, parts, schema) if matched else _Staged([], 0)
        except BaseException:
            FileStore(uri).delete_files(incoming.paths)
            raise
        staged = _Staged(incoming.adds + rewritten.adds, incoming.rows + rewritten.rows)
        log.info("%s %s: %d file(s) rewritten, %d row(s) incoming", ctx.operation, ctx.table, len(matched), incoming.rows)
        return self._commit(uri, dt, staged, matched, "append", schema, parts, txn, ctx)

    def delete(self, uri: str, predicate: str, txn: Txn | None, ctx: CommitContext) -> CommitResult:
        dt = self._load(uri, ctx.table)
        if skipped := _skipped(dt, txn, ctx):
            return skipped
        _check_readable(dt, ctx.table)
        schema, parts, live = _spark_schema(dt), list(dt.metadata().partition_columns), _live_files(dt)
        try:
            condition = F.expr(predicate)
            target = self._read_files(uri, schema, [f.path for f in live], with_file=True).where(condition)
            matched = _files_matching(target, live, parts)
        except AnalysisException as exc:
            raise StorageError(f"delete on {ctx.table}: invalid predicate {predicate!r}: {exc}") from exc
        kept = self._read_files(uri, schema, [f.path for f in matched]).where(~F.coalesce(condition, F.lit(False)))
        staged = self._stage(uri, kept, parts, schema) if matched else _Staged([], 0)
        log.info("delete %s: %d file(s) rewritten", ctx.table, len(matched))
        log.debug("delete %s predicate: %s", ctx.table, predicate)  # may name pseudonymous keys: debug only
        return self._commit(uri, dt, staged, matched, "append", schema, parts, txn, ctx)

    def vacuum(self, uri: str, retention_hours: int, ctx: CommitContext) -> list[str]:
        dt = self._load(uri, ctx.table)
        store = FileStore(uri)
        _clean_stale_staging(store, now_ms=_now_ms())

        def run(dry_run: bool) -> list[str]:
            return dt.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                full=True,  # also removes files written but never committed
                commit_properties=_commit_properties(ctx, None),
            )

        try:
            # Full mode also lists tombstones whose files are already gone: report only real deletions.
            candidates = [_relative(uri, p) for p in run(dry_run=True)]
            present = [p for p in candidates if store.exists(p)]
            if present:
                run(dry_run=False)
        except DeltaError as exc:
            raise StorageError(f"vacuum of {ctx.table} at {uri} failed: {exc}") from exc
        log.info("vacuum %s: %d file(s) deleted", ctx.table, len(present))
        return sorted(present)

    # ------------------------------------------------------------------ internals
    def _create_with(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        require_columns(df.schema, partition_by, where=f"{ctx.operation} {ctx.table} partition_by")
        staged = self._stage(uri, df, list(partition_by), df.schema)
        return self._commit(uri, None, staged, [], "create", df.schema, list(partition_by), txn, ctx)

    def _evolve(self, dt: DeltaTable, incoming: StructType, ctx: CommitContext) -> tuple[DeltaTable, StructType]:
        """Add the incoming columns the table lacks (a metadata-only commit before the data commit)."""
        merged, new_fields = merge_schemas(_spark_schema(dt), incoming, where=f"{ctx.operation} {ctx.table}")
        if new_fields:
            fields = [Field.from_json(json.dumps(f.jsonValue())) for f in new_fields]
            evolve_ctx = CommitContext(ctx.table, ctx.run_id, ctx.stage, "add_columns")
            try:
                dt.alter.add_columns(fields, commit_properties=_commit_properties(evolve_ctx, None))
            except DeltaError as exc:
                raise StorageError(f"could not add column(s) {[f.name for f in new_fields]} to {ctx.table}: {exc}") from exc
            log.info("schema of %s evolved: added %s", ctx.table, [f.name for f in new_fields])
            dt = DeltaTable(dt.table_uri)
        return dt, merged

    def _stage(self, uri: str, df: DataFrame, partition_by: list[str], schema: StructType) -> _Staged:
        """Executors write ``df``; the driver moves the files to their final names (uncommitted)."""
        try:
            return self._stage_files(uri, df, partition_by)
        except OSError as exc:  # disk full, read-only or vanished directory while placing files
            raise StorageError(
                f"writing data files of {_label(uri)} at {uri} failed: {exc}; nothing was committed and the "
                "staged files were removed"
            ) from exc

    def _stage_files(self, uri: str, df: DataFrame, partition_by: list[str]) -> _Staged:
        store = FileStore(uri)
        now = _now_ms()
        _clean_stale_staging(store, now_ms=now)
        staging_rel = f"{STAGING_DIR}/{now}-{uuid.uuid4().hex}"
        try:
            df.write.mode("errorifexists").partitionBy(*partition_by).parquet(f"{uri}/{staging_rel}")
            files = store.list_files(staging_rel)
            counts = store.row_counts([f"{staging_rel}/{f.rel_path}" for f in files])
            adds, moves = [], []
            for f, rows in zip(files, counts):
                if rows == 0:  # Spark writes one empty file for an empty unpartitioned DataFrame
                    continue
                directory, _, base = f.rel_path.rpartition("/")
                suffix = base[base.index(".") :] if "." in base else ".parquet"
                final = f"{directory + '/' if directory else ''}part-{uuid.uuid4()}{suffix}"
                moves.append((f"{staging_rel}/{f.rel_path}", final))
                stats = json.dumps({"numRecords": rows})
                adds.append(AddAction(final, f.size, partition_values_of(f.rel_path, partition_by), now, True, stats))
            store.move_all(moves)
        finally:
            store.delete_dir(staging_rel)
        return _Staged(adds, sum(json.loads(a.stats)["numRecords"] for a in adds))

    def _commit(
        self,
        uri: str,
        dt: DeltaTable | None,
        staged: _Staged,
        removes: Sequence[_LiveFile],
        mode: str,
        schema: StructType,
        partition_by: list[str],
        txn: Txn | None,
        ctx: CommitContext,
        *,
        implicit_removes: int = 0,
    ) -> CommitResult:
        """One Delta commit of the staged Adds (and Removes); staged files are deleted if it fails."""
        props = _commit_properties(ctx, txn)
        delta_schema = Schema.from_json(to_delta_json(schema))
        now = _now_ms()
        actions: list[AddAction | RemoveAction] = [
            RemoveAction(f.path, True, now, f.size, _partition_strings(f, partition_by, schema)) for f in removes
        ]
        actions += staged.adds
        fault_point("lake.after_files_before_commit", ctx.table)
        try:
            if dt is None:
                create_table_with_add_actions(
                    native_uri(uri), delta_schema, staged.adds, mode="error", partition_by=partition_by, commit_properties=props
                )
            else:
                dt.create_write_transaction(actions, mode, delta_schema, partition_by=partition_by, commit_properties=props)
        except (CommitFailedError, DeltaError, OSError) as exc:
            FileStore(uri).delete_files(staged.paths)
            conflict = isinstance(exc, CommitFailedError) or "conflict" in str(exc).lower() or "already exists" in str(exc).lower()
            what = "conflicts with a concurrent commit" if conflict else "failed"
            raise StorageError(
                f"{ctx.operation} on {ctx.table} at {uri} {what}: {exc}; nothing was committed, rerun the write "
                "(with the same Txn it stays idempotent)"
            ) from exc
        fault_point("lake.after_commit", ctx.table)
        version = self.version(uri)
        removed = len(removes) + implicit_removes
        log.info(
            "%s %s committed version %s: +%d file(s) -%d file(s), %d row(s)",
            ctx.operation, ctx.table, version, len(staged.adds), removed, staged.rows,
        )
        return CommitResult(ctx.table, version, False, staged.rows, len(staged.adds), removed)


# ---------------------------------------------------------------------- helpers
def _label(uri: str) -> str:
    """``layer.name`` of a table URI laid out as ``<root>/<layer>/<name>``."""
    return ".".join(uri.rstrip("/").split("/")[-2:])


def _open(uri: str, table: str) -> DeltaTable:
    """``DeltaTable(uri)``; an unreadable log is a StorageError naming the table and the bad entry."""
    try:
        return DeltaTable(native_uri(uri))
    except TableNotFoundError:
        raise
    except (DeltaError, OSError, ValueError) as exc:
        bad = _unparsable_log_entry(uri)
        where = f" (log entry {bad} is not valid JSON: truncated or corrupt)" if bad else ""
        raise StorageError(
            f"the Delta log of table {table} at {uri} cannot be read{where}: {exc}; restore the entry from a "
            "backup or remove the torn last commit if no reader relied on it"
        ) from exc


def _unparsable_log_entry(uri: str) -> str | None:
    """Name of the newest ``_delta_log/*.json`` commit file that is not newline-delimited JSON."""
    log_dir = Path(native_uri(uri)) / "_delta_log"
    if not log_dir.is_dir():
        return None
    for entry in sorted(log_dir.glob("*.json"), reverse=True):
        try:
            for line in entry.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    json.loads(line)
        except (ValueError, OSError):
            return entry.name
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _commit_properties(ctx: CommitContext, txn: Txn | None) -> CommitProperties:
    return CommitProperties(
        custom_metadata={"userMetadata": ctx.user_metadata()},
        app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None,
    )


def _skipped(dt: DeltaTable, txn: Txn | None, ctx: CommitContext) -> CommitResult | None:
    if txn is None:
        return None
    done = dt.transaction_version(txn.app_id)
    if done is None or done < txn.version:
        return None
    log.info("%s %s skipped: txn %s already at version %d >= %d", ctx.operation, ctx.table, txn.app_id, done, txn.version)
    return CommitResult(ctx.table, dt.version(), True, None, 0, 0)


def _spark_schema(dt: DeltaTable) -> StructType:
    return from_delta_json(dt.schema().to_json())


def _partitioning(dt: DeltaTable, requested: Sequence[str], ctx: CommitContext) -> list[str]:
    current = list(dt.metadata().partition_columns)
    if requested and list(requested) != current:
        raise StorageError(
            f"{ctx.operation} on {ctx.table}: partition_by={list(requested)} but the table is partitioned by {current}; "
            "pass the table's partitioning (or none), or delete the table directory and rewrite it to change it"
        )
    return current


def _check_readable(dt: DeltaTable, table: str) -> None:
    protocol = dt.protocol()
    features = set(protocol.reader_features or [])
    if protocol.min_reader_version == 2 or (features - _READABLE_FEATURES):
        raise StorageError(
            f"table {table} uses reader features {sorted(features) or 'columnMapping'} that the delta-rs engine's "
            "Parquet reader cannot honour; use the delta-spark engine for it"
        )


def _live_files(dt: DeltaTable) -> list[_LiveFile]:
    """The snapshot's data files with typed partition values (metadata only)."""
    parts = list(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    values = [actions.column(f"partition.{c}").to_pylist() for c in parts]
    return [
        _LiveFile(unquote(p), s, tuple(_normalize(v[i]) for v in values))
        for i, (p, s) in enumerate(zip(paths, sizes))
    ]


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


_PARSERS: dict[type[DataType], Callable[[str], Any]] = {
    StringType: str,
    ByteType: int,
    ShortType: int,
    IntegerType: int,
    LongType: int,
    BooleanType: lambda s: s.lower() == "true",
    DateType: date.fromisoformat,
    TimestampType: lambda s: _normalize(datetime.fromisoformat(s.replace("Z", "+00:00"))),
    TimestampNTZType: datetime.fromisoformat,
    DecimalType: Decimal,
}


def _typed(value: str | None, dtype: DataType) -> Any:
    """A Delta partition-value string as the Python value delta-rs reports for that type."""
    if value is None:
        return None
    parser = _PARSERS.get(type(dtype))
    return parser(value) if parser else value


def _partition_strings(f: _LiveFile, partition_by: list[str], schema: StructType) -> dict[str, str | None]:
    """Partition values of a live file as Delta strings (for its RemoveAction)."""
    out: dict[str, str | None] = {}
    for col, value in zip(partition_by, f.partition):
        if value is None:
            out[col] = None
        elif isinstance(schema[col].dataType, BooleanType):
            out[col] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[col] = value.isoformat(sep=" ")
        else:
            out[col] = str(value)
    return out


def _files_matching(rows: DataFrame, live: list[_LiveFile], partition_by: list[str]) -> list[_LiveFile]:
    """Live files holding at least one of ``rows`` (only distinct file paths reach the driver)."""
    by_rel = {f.path: f for f in live}
    depth = len(partition_by) + 1
    found = []
    for row in rows.select(F.col(_FILE_COL).alias("p")).distinct().collect():
        rel = "/".join(unquote(row.p).split("/")[-depth:])
        if rel not in by_rel:
            raise StorageError(f"data file {row.p} is not laid out as <partition dirs>/<file>; rewrite the table with overwrite")
        found.append(by_rel[rel])
    return found


def _require_unique_keys(keys_df: DataFrame, keys: Sequence[str], table: str) -> None:
    non_null = keys_df.where(reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in keys]))
    dup = non_null.groupBy(*keys).count().where(F.col("count") > 1).limit(1).collect()
    if dup:
        sample = {k: dup[0][k] for k in keys}
        raise StorageError(f"upsert into {table}: several incoming rows share the key {sample}; deduplicate them before the upsert")


def _relative(uri: str, path: str) -> str:
    """A path delta-rs reported (relative, absolute or URI) relative to the table root."""
    for prefix in (uri, native_uri(uri), f"file://{uri}"):
        if path.startswith(prefix + "/"):
            return path[len(prefix) + 1 :]
    return path


def _clean_stale_staging(store: FileStore, now_ms: int) -> None:
    """Remove staging directories of crashed writes older than the safety margin."""
    for name in store.list_dirs(STAGING_DIR):
        started = name.split("-", 1)[0]
        if started.isdigit() and now_ms - int(started) > STAGING_SAFETY_MARGIN_MS:
            log.info("removing stale staging directory %s/%s/%s", store.table_uri, STAGING_DIR, name)
            store.delete_dir(f"{STAGING_DIR}/{name}")
