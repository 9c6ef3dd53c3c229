"""delta-spark engine: a thin adapter over Delta Lake's own Spark writer, MERGE and DELETE.

Used when the session's JVM has ``io.delta.tables.DeltaTable``. Idempotency uses Delta's
``txnAppId``/``txnVersion`` (write options, and the equivalent session confs for MERGE/DELETE);
run id and stage go into ``userMetadata``. The transaction marker is read back with the
``deltalake`` package, which reads the same log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from cdp_spark.errors import StorageError
from cdp_spark.lake._delta_rs import DeltaRsEngine
from cdp_spark.lake._model import CommitContext, CommitResult, Txn

log = logging.getLogger(__name__)

_CONF_TXN_APP = "spark.databricks.delta.write.txnAppId"
_CONF_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_CONF_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_CONF_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


class DeltaSparkEngine:
    """Delta tables through delta-spark (the JVM implementation)."""

    name = "delta-spark"

    def __init__(self, spark: SparkSession) -> None:
        from delta.tables import DeltaTable  # the python half of delta-spark; needs the jar at call time

        self._spark = spark
        self._delta = DeltaTable
        # Log-level metadata (txn markers) is read with delta-rs: same protocol, no JVM internals.
        self._log_reader = DeltaRsEngine(spark)

    # ------------------------------------------------------------------ metadata
    def exists(self, uri: str) -> bool:
        return self._delta.isDeltaTable(self._spark, uri)

    def version(self, uri: str) -> int | None:
        if not self.exists(uri):
            return None
        return int(self._delta.forPath(self._spark, uri).history(1).select("version").first()[0])

    def txn_version(self, uri: str, app_id: str) -> int | None:
        return self._log_reader.txn_version(uri, app_id)

    def history(self, uri: str, table: str, limit: int | None) -> list[dict[str, Any]]:
        self._require(uri, table)
        frame = self._delta.forPath(self._spark, uri).history(limit) if limit else self._delta.forPath(self._spark, uri).history()
        rows = frame.select("version", "timestamp", "operation", "userMetadata").collect()  # one row per commit
        return [
            {"version": r.version, "timestamp": int(r.timestamp.timestamp() * 1000), "operation": r.operation, "userMetadata": r.userMetadata}
            for r in rows
        ]

    def _require(self, uri: str, table: str) -> None:
        if not self.exists(uri):
            raise StorageError(
                f"table {table} does not exist at {uri}; it is created by Lake.create, or by the first "
                "append/overwrite/upsert to it"
            )

    # ------------------------------------------------------------------ read
    def read(self, uri: str, table: str, version: int | None, timestamp: datetime | None) -> DataFrame:
        self._require(uri, table)
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        elif timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.strftime("%Y-%m-%d %H:%M:%S.%f"))
        try:
            return reader.load(uri)
        except AnalysisException as exc:
            at = f"version {version}" if version is not None else f"timestamp {timestamp}"
            raise StorageError(f"table {table} at {uri} has no {at}: {exc}; see Lake.history for the versions still available") from exc

    def read_added(self, uri: str, table: str, since_version: int | None, version: int) -> DataFrame:
        from pyspark.sql import functions as F

        current = self.read(uri, table, version, None)
        if since_version is None:
            return current
        # Data file names are unique within a table (a UUID each); comparing names, not paths, keeps
        # the URI spelling (file:/ or file:///) out of it. Filtering the Delta scan honours deletion vectors.
        before = sorted({f.rstrip("/").rsplit("/", 1)[-1] for f in self.read(uri, table, since_version, None).inputFiles()})
        return current.where(~F.col("_metadata.file_name").isin(before)) if before else current

    # ------------------------------------------------------------------ writes
    def create(self, uri: str, schema: StructType, partition_by: Sequence[str], ctx: CommitContext) -> CommitResult:
        with self._session_conf({_CONF_USER_METADATA: ctx.user_metadata()}):
            self._delta.createIfNotExists(self._spark).location(uri).addColumns(schema).partitionedBy(*partition_by).execute()
        return CommitResult(ctx.table, self.version(uri), False, 0, 0, 0)

    def append(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        return self._write(uri, df, "append", partition_by, txn, ctx, {"mergeSchema": "true"})

    def overwrite(self, uri: str, df: DataFrame, partition_by: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        return self._write(uri, df, "overwrite", partition_by, txn, ctx, {"overwriteSchema": "true"})

    def overwrite_partitions(self, uri: str, df: DataFrame, txn: Txn | None, ctx: CommitContext) -> CommitResult:
        self._require(uri, ctx.table)
        return self._write(uri, df, "overwrite", (), txn, ctx, {"partitionOverwriteMode": "dynamic", "mergeSchema": "true"})

    def upsert(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        if not self.exists(uri):
            return self._write(uri, df, "append", (), txn, ctx, {})
        if skipped := self._skipped(uri, txn, ctx):
            return skipped
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        merge = self._delta.forPath(self._spark, uri).alias("t").merge(df.alias("s"), condition)
        with self._dml_conf(txn, ctx, {"spark.databricks.delta.schema.autoMerge.enabled": "true"}):
            self._run(lambda: merge.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(), ctx, uri)
        return self._result(uri, ctx)

    def replace(self, uri: str, df: DataFrame, keys: Sequence[str], txn: Txn | None, ctx: CommitContext) -> CommitResult:
        """One MERGE: a delete marker per distinct incoming key removes the target's rows; incoming rows never match, so they are inserted."""
        from pyspark.sql import functions as F

        if not self.exists(uri):
            return self._write(uri, df, "append", (), txn, ctx, {})
        if skipped := self._skipped(uri, txn, ctx):
            return skipped
        flag = "_cdp_replace_delete"
        markers = df.select(*keys).distinct()
        for c in df.columns:
            if c not in keys:
                markers = markers.withColumn(c, F.lit(None).cast(df.schema[c].dataType))
        source = df.withColumn(flag, F.lit(False)).unionByName(markers.select(*df.columns).withColumn(flag, F.lit(True)))
        condition = f"s.`{flag}` AND " + " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        values = {f"`{c}`": f"s.`{c}`" for c in df.columns}
        merge = self._delta.forPath(self._spark, uri).alias("t").merge(source.alias("s"), condition)
        with self._dml_conf(txn, ctx, {"spark.databricks.delta.schema.autoMerge.enabled": "true"}):
            self._run(lambda: merge.whenMatchedDelete().whenNotMatchedInsert(condition=f"NOT s.`{flag}`", values=values).execute(), ctx, uri)
        return self._result(uri, ctx)

    def delete(self, uri: str, predicate: str, txn: Txn | None, ctx: CommitContext) -> CommitResult:
        self._require(uri, ctx.table)
        if skipped := self._skipped(uri, txn, ctx):
            return skipped
        table = self._delta.forPath(self._spark, uri)
        with self._dml_conf(txn, ctx, {}):
            self._run(lambda: table.delete(predicate), ctx, uri, predicate=predicate)
        return self._result(uri, ctx)

    def vacuum(self, uri: str, retention_hours: int, ctx: CommitContext) -> list[str]:
        self._require(uri, ctx.table)
        sql_path = uri.replace("`", "``")
        with self._session_conf({_CONF_RETENTION_CHECK: "false", _CONF_USER_METADATA: ctx.user_metadata()}):
            # DRY RUN lists the files (bounded: one row per file to delete), then the real run deletes them.
            files = [r[0] for r in self._spark.sql(f"VACUUM delta.`{sql_path}` RETAIN {retention_hours} HOURS DRY RUN").collect()]
            self._delta.forPath(self._spark, uri).vacuum(float(retention_hours))
        return sorted(files)

    # ------------------------------------------------------------------ internals
    def _skipped(self, uri: str, txn: Txn | None, ctx: CommitContext) -> CommitResult | None:
        if txn is None:
            return None
        done = self.txn_version(uri, txn.app_id)
        if done is None or done < txn.version:
            return None
        log.info("%s %s skipped: txn %s already at version %d >= %d", ctx.operation, ctx.table, txn.app_id, done, txn.version)
        return CommitResult(ctx.table, self.version(uri), True, None, 0, 0)

    def _write(
        self,
        uri: str,
        df: DataFrame,
        mode: str,
        partition_by: Sequence[str],
        txn: Txn | None,
        ctx: CommitContext,
        options: dict[str, str],
    ) -> CommitResult:
        if skipped := self._skipped(uri, txn, ctx):
            return skipped
        writer = df.write.format("delta").mode(mode).option("userMetadata", ctx.user_metadata())
        for key, value in options.items():
            writer = writer.option(key, value)
        if txn is not None:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        self._run(lambda: writer.save(uri), ctx, uri)
        return self._result(uri, ctx)

    def _run(self, action: Any, ctx: CommitContext, uri: str, predicate: str | None = None) -> None:
        try:
            action()
        except AnalysisException as exc:
            what = f"invalid predicate {predicate!r}" if predicate is not None else "rejected"
            raise StorageError(f"{ctx.operation} on {ctx.table} at {uri}: {what}: {exc}") from exc
        except Exception as exc:  # py4j wraps Delta's ConcurrentModificationException subclasses
            if "Concurrent" in type(exc).__name__ or "ConcurrentModification" in str(exc)[:2000]:
                raise StorageError(
                    f"{ctx.operation} on {ctx.table} at {uri} conflicts with a concurrent commit: {exc}; "
                    "nothing was committed, rerun the write (with the same Txn it stays idempotent)"
                ) from exc
            raise

    def _result(self, uri: str, ctx: CommitContext) -> CommitResult:
        """The commit's numbers from its operation metrics (one history row)."""
        last = self._delta.forPath(self._spark, uri).history(1).select("version", "operation", "operationMetrics").first()
        metrics = {k: int(v) for k, v in (last.operationMetrics or {}).items() if str(v).isdigit()}
        if last.operation == "MERGE":
            rows = sum(metrics.get(k, 0) for k in ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsCopied"))
            added, removed = metrics.get("numTargetFilesAdded", 0), metrics.get("numTargetFilesRemoved", 0)
        elif last.operation == "DELETE":
            rows, added, removed = metrics.get("numCopiedRows", 0), metrics.get("numAddedFiles", 0), metrics.get("numRemovedFiles", 0)
        else:
            rows = metrics.get("numOutputRows")
            added, removed = metrics.get("numFiles", metrics.get("numAddedFiles", 0)), metrics.get("numRemovedFiles", 0)
        return CommitResult(ctx.table, int(last.version), False, rows, added, removed)

    @contextmanager
    def _session_conf(self, values: dict[str, str]) -> Iterator[None]:
        previous = {k: self._spark.conf.get(k, None) for k in values}
        for key, value in values.items():
            self._spark.conf.set(key, value)
        try:
            yield
        finally:
            for key, value in previous.items():
                if value is None:
                    self._spark.conf.unset(key)
                else:
                    self._spark.conf.set(key, value)

    def _dml_conf(self, txn: Txn | None, ctx: CommitContext, extra: dict[str, str]) -> Any:
        values = {_CONF_USER_METADATA: ctx.user_metadata(), **extra}
        if txn is not None:
            values |= {_CONF_TXN_APP: txn.app_id, _CONF_TXN_VERSION: str(txn.version)}
        return self._session_conf(values)
