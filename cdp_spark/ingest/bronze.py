"""Config-driven bronze ingestion: every landing source into ``bronze.<source>`` (see docs/bronze.md).

Per source and run: plan a batch (files not in ``ops.ingestion_log``), record the plan, read and
classify every record (good -> ``bronze.<source>``, bad -> ``bronze.quarantine`` with a reason),
commit drift events, quarantine and data each under ``Txn("bronze:<source>", batch)``, check
rows read = bronze + quarantined per file against what was committed, then log the files as
ingested. A crash anywhere reruns the same planned batch; the Txn makes committed writes no-ops.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig, SourceConfig
from cdp_spark.errors import CdpError, ConfigError
from cdp_spark.ingest import _reasons as R
from cdp_spark.ingest import _tables as TB
from cdp_spark.ingest._checks import country_codes, delta_safe_name, record_reason
from cdp_spark.ingest._faults import fault_point
from cdp_spark.ingest._landing import LandingFile, fingerprint, list_files, require_landing_root
from cdp_spark.ingest._parquet import DriftEvent, read_parquet_files
from cdp_spark.ingest._text import composite_key, parse_csv_header, read_text_lines, with_csv_fields, with_json_fields, with_text_checks
from cdp_spark.lake import Lake, Txn

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32  # nesting bound for JSON records (objects and arrays)
RAW_TEXT_BOUND = 4096  # characters (or bytes before base64) of a bad record kept in quarantine
_PARTITIONABLE = frozenset({"ingest_date", "_source", "_country", "_batch"})


class IngestCountError(CdpError):
    """Rows read from a file differ from rows committed to bronze plus quarantine."""


@dataclass(frozen=True)
class SourceReport:
    """What one source's run did. ``files_skipped`` were ingested before (same content)."""

    source: str
    batch: int | None
    recovered: bool  # True when this run finished a batch planned by a crashed run
    files_seen: int
    files_ingested: int
    files_skipped: int
    files_quarantined: int
    rows_read: int
    rows_bronze: int
    rows_quarantined: int
    seconds: float
    rows_suppressed: int = 0  # rows of erased subjects kept out (privacy: no resurrection)


@dataclass(frozen=True)
class BronzeReport:
    """Per-source results of :func:`run_bronze`; ``rows_in`` = records read, ``rows_out`` = rows landed in bronze."""

    run_id: str
    run_date: date
    sources: tuple[SourceReport, ...]

    @property
    def rows_in(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_out(self) -> int:
        return sum(s.rows_bronze for s in self.sources)

    @property
    def rows_quarantined(self) -> int:
        return sum(s.rows_quarantined for s in self.sources)

    @property
    def rows_suppressed(self) -> int:
        return sum(s.rows_suppressed for s in self.sources)

    def source(self, name: str) -> SourceReport:
        for report in self.sources:
            if report.source == name:
                return report
        raise KeyError(name)


def run_bronze(
    spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None, sources: list[str] | None = None
) -> BronzeReport:
    """Ingest the new landing files of every configured source (or only ``sources``) into bronze.

    Idempotent: a rerun over the same landing data ingests nothing; a rerun after a crash
    finishes the interrupted batch without duplicating rows. ``run_date`` (default: today, UTC)
    is the ``ingest_date`` partition of the rows written.
    """
    selected = [cfg.source(name) for name in sources] if sources is not None else list(cfg.sources)
    for src in selected:
        _validate(src, cfg.bronze.partition_by)
    run_date = run_date or datetime.now(timezone.utc).date()
    require_landing_root(spark, cfg.paths.landing)
    lake = Lake(spark, cfg.paths.lakehouse, engine=cfg.engines.storage, run_id=run_id, stage="bronze")
    lake.create(TB.OPS, TB.LOG_TABLE, TB.LOG_SCHEMA)
    resident = {
        root: Lake(spark, root, engine=cfg.engines.storage, run_id=run_id, stage="bronze")
        for root in sorted(set(cfg.privacy.residency.values()))
        if root != cfg.paths.lakehouse
    }
    suppression, key = _suppression_list(spark, cfg, [lake, *resident.values()])
    ctx = _RunContext(spark, lake, cfg, run_id, run_date, datetime.now(timezone.utc), suppression, key, resident)
    try:
        reports = tuple(_ingest_source(ctx, src) for src in selected)
    finally:
        if suppression is not None:
            suppression.unpersist()
    report = BronzeReport(run_id, run_date, reports)
    log.info(
        "bronze run %s: %d row(s) in, %d to bronze, %d quarantined, %d suppressed (erased subjects)",
        run_id, report.rows_in, report.rows_out, report.rows_quarantined, report.rows_suppressed,
    )
    return report


def _suppression_list(spark: SparkSession, cfg: CdpConfig, lakes: list[Lake]) -> tuple[DataFrame | None, bytes | None]:
    """``ops.suppression`` of every lakehouse (home and in-country: an erasure runs where the data is),
    cached, and the secret that hashes identifiers, when anything was erased."""
    from cdp_spark.privacy.pseudonymize import load_secret
    from cdp_spark.privacy.suppression import SUPPRESSION_TABLE

    lists = [lake.read(*SUPPRESSION_TABLE).select("id_key") for lake in lakes if lake.exists(*SUPPRESSION_TABLE)]
    if not cfg.privacy.suppression_enabled or not lists:
        return None, None
    union = lists[0]
    for more in lists[1:]:
        union = union.unionByName(more)
    listed = union.distinct().cache()
    if listed.isEmpty():
        listed.unpersist()
        return None, None
    # The list was hashed with the existing secret: read it (env, or the embedded local file), never
    # create a new one here — a fresh secret would hash differently and let erased people back in.
    local = cfg.silver.local_secret_file
    readable_local = cfg.spark.mode == "embedded" and local is not None and Path(local).expanduser().exists()
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=local, allow_create=readable_local)
    log.info("bronze: %d erased identifier(s) on the suppression list are kept out of intake", listed.count())
    return listed, key


def _suppressed_split(ctx: _RunContext, src: SourceConfig, frame: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """``(kept, suppressed)`` bronze rows: a row carrying an erased identifier never lands again."""
    from cdp_spark.privacy.suppression import suppress_source_rows

    if ctx.suppression is None or ctx.key is None:
        return frame, None
    split = suppress_source_rows(frame, src, key=ctx.key, suppressed=ctx.suppression, gmail_rule=ctx.cfg.silver.gmail_normalization)
    return split if split is not None else (frame, None)


def _suppressed_quarantine(ctx: _RunContext, src: SourceConfig, frame: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """``(kept, suppressed)`` quarantine rows: a bad line naming an erased identifier is not stored either.

    Its fields could not be parsed, so the raw text is searched (``apply_text_suppression``).
    File-level rows carry no raw text and are always kept.
    """
    from cdp_spark.privacy.suppression import apply_text_suppression

    if ctx.suppression is None or ctx.key is None:
        return frame, None
    searchable = F.coalesce((F.col("level") == "record") & (F.col("raw_encoding") == "utf-8"), F.lit(False))
    records = frame.where(searchable)
    kept, dropped = apply_text_suppression(
        records, text_col="raw", row_key=["file_path", "line", "raw"], key=ctx.key, suppressed=ctx.suppression,
        country=F.lit(src.country) if src.country else None, gmail_rule=ctx.cfg.silver.gmail_normalization,
    )
    return frame.where(~searchable).unionByName(kept), dropped


def _validate(src: SourceConfig, partition_by: Sequence[str]) -> None:
    where = f"sources[{src.name}]"
    unknown = set(partition_by) - _PARTITIONABLE
    if unknown:
        raise ConfigError(f"bronze.partition_by: {sorted(unknown)} are not bronze columns; use some of {sorted(_PARTITIONABLE)}")
    if src.format == "csv" and src.options.get("header", "true").lower() != "true":
        raise ConfigError(f"{where}.options.header: bronze needs CSV files with a header line; remove header: false")
    encoding = src.options.get("encoding", src.options.get("charset", "utf-8")).lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8"):
        raise ConfigError(f"{where}.options.encoding: bronze reads UTF-8 only (got {encoding!r}); convert the files upstream")
    if src.country is not None and src.country.upper() not in country_codes():
        raise ConfigError(f"{where}.country: {src.country!r} is not an ISO 3166 code; use e.g. 'DE'")


@dataclass(frozen=True)
class _RunContext:
    spark: SparkSession
    lake: Lake
    cfg: CdpConfig
    run_id: str
    run_date: date
    started_at: datetime
    suppression: DataFrame | None = None  # ops.suppression (hashed keys of erased identifiers), when any
    key: bytes | None = None  # the pseudonymization secret, to hash raw identifiers as silver does
    resident: dict[str, Lake] = field(default_factory=dict)  # privacy.residency: in-country lakehouse root -> Lake

    def lakes(self) -> list[Lake]:
        """The home lakehouse and every in-country one (data residency)."""
        return [self.lake, *self.resident.values()]


def _source_field(src: SourceConfig, name: str | None) -> str | None:
    """A config column reference as the source's own field name (canonical names are mapped back)."""
    if name is None or name in src.columns:
        return name
    canonical_to_source = {canonical: field for field, canonical in src.columns.items()}
    return canonical_to_source.get(name, name)


# ---------------------------------------------------------------------- planning
@dataclass(frozen=True)
class _Plan:
    batch: int
    files: tuple[LandingFile, ...]
    redelivered: frozenset[str]
    recovered: bool
    files_seen: int


def _plan(ctx: _RunContext, src: SourceConfig) -> _Plan:
    """The batch to ingest: a pending planned batch (crash recovery) or the files not yet ingested
    (no files when there is nothing new)."""
    rows = ctx.lake.read(TB.OPS, TB.LOG_TABLE).where(F.col("source") == src.name).collect()  # per-file metadata only
    done = {r.batch for r in rows if r.status == TB.STATUS_INGESTED}
    pending = sorted({r.batch for r in rows if r.status == TB.STATUS_PLANNED} - done)
    if pending:
        batch = pending[-1]
        manifest = sorted((r for r in rows if r.status == TB.STATUS_PLANNED and r.batch == batch), key=lambda r: r.file_path)
        files = tuple(
            LandingFile(r.file_path, r.file_size, r.file_mtime, r.content_hash, r.file_issue, r.ends_with_newline) for r in manifest
        )
        log.warning("source %s: finishing batch %d planned by run %s (%d file(s))", src.name, batch, manifest[0].run_id, len(files))
        return _Plan(batch, files, frozenset(r.file_path for r in manifest if r.redelivery), True, len(files))
    ingested = [r for r in rows if r.status == TB.STATUS_INGESTED]
    known_stat = {(r.file_path, r.file_size, r.file_mtime) for r in ingested}
    hashes: dict[str, set[str]] = {}
    for r in ingested:
        hashes.setdefault(r.file_path, set()).add(r.content_hash)
    listed = list_files(ctx.spark, ctx.cfg.paths.landing, src.path)
    candidates = [f for f in listed if (f.path, f.size, f.mtime) not in known_stat]
    new = tuple(f for f in fingerprint(ctx.spark, candidates, src.format) if f.content_hash not in hashes.get(f.path, set()))
    log.info("source %s: %d file(s) listed, %d new or changed", src.name, len(listed), len(new))
    if not new:
        return _Plan(0, (), frozenset(), False, len(listed))
    batch = max((r.batch for r in rows), default=0) + 1
    redelivered = frozenset(f.path for f in new if f.path in hashes)
    manifest = [_log_row(src.name, f, TB.STATUS_PLANNED, batch, f.path in redelivered, ctx, None) for f in new]
    ctx.lake.append(TB.OPS, TB.LOG_TABLE, ctx.spark.createDataFrame(manifest, TB.LOG_SCHEMA), txn=Txn(f"bronze-plan:{src.name}", batch))
    fault_point("bronze.after_plan")
    return _Plan(batch, new, redelivered, False, len(listed))


def _log_row(
    source: str, f: LandingFile, status: str, batch: int, redelivery: bool, ctx: _RunContext, counts: tuple[int, int, int, int] | None
) -> tuple:
    read, bronze, quarantined, suppressed = counts if counts is not None else (None, None, None, None)
    return (
        source, f.path, f.size, f.mtime, f.content_hash, status, batch, redelivery, f.issue, f.ends_with_newline,
        read, bronze, quarantined, ctx.run_id, ctx.started_at, suppressed,
    )


# ---------------------------------------------------------------------- reading and classifying
@dataclass(frozen=True)
class _Classified:
    records: DataFrame | None  # file_path, line, value, reason, record_key, country, rescued, + source columns
    columns: tuple[tuple[str, Column], ...]  # (bronze column name, expression over records)
    drift: tuple[DriftEvent, ...]
    file_issues: dict[str, str]  # path -> file-level reason


def _source_columns(ctx: _RunContext, src: SourceConfig) -> T.StructType | None:
    if not ctx.lake.exists(TB.BRONZE, src.name):
        return None
    schema = ctx.lake.read(TB.BRONZE, src.name).schema
    return T.StructType([f for f in schema.fields if f.name not in TB.METADATA_COLUMNS])


def _classify_text(ctx: _RunContext, src: SourceConfig, files: Sequence[LandingFile]) -> _Classified:
    issues = {f.path: f.issue for f in files if f.issue}
    readable = [f for f in files if not f.issue]
    if not readable:
        return _Classified(None, (), (), issues)
    lines = read_text_lines(ctx.spark, [f.path for f in readable], {f.path: f.ends_with_newline for f in readable})
    if src.format == "csv":
        headers = []
        for row in lines.where(F.col("line") == 1).select("file_path", F.col("value").cast("binary").alias("raw")).collect():
            names = parse_csv_header(bytes(row.raw), src.options)
            if names is None:
                issues[row.file_path] = R.CSV_BAD_HEADER
            else:
                headers.append((row.file_path, names, bytes(row.raw).decode("utf-8")))
        if not headers:
            return _Classified(None, (), (), issues)
        header_df = ctx.spark.createDataFrame(headers, "file_path string, header array<string>, header_line string")
        width = max(len(h[1]) for h in headers)
        parsed = lines.where(F.col("file_path").isin([h[0] for h in headers])).transform(
            with_csv_fields(header_df, width=width, options=src.options, max_record_bytes=src.max_record_bytes)
        )
    else:
        parsed = lines.transform(with_json_fields(max_record_bytes=src.max_record_bytes, max_depth=MAX_JSON_DEPTH))
    checked = parsed.transform(
        with_text_checks(
            key_field=",".join(_source_field(src, k) for k in src.key_columns),
            event_field=_source_field(src, src.event_time_column),
            timestamp_format=src.timestamp_format,
            country_field=_source_field(src, src.country_column),
            fixed_country=src.country,
        )
    ).persist(StorageLevel.MEMORY_AND_DISK)
    # First occurrence of every field name among good records: column order and drift attribution.
    firsts = (
        checked.where(F.col("reason").isNull())
        .select("file_path", "line", F.posexplode(F.map_keys("fields")).alias("pos", "key"))
        .groupBy("key")
        .agg(F.min(F.struct("file_path", "line", "pos")).alias("first"))
        .collect()
    )
    firsts.sort(key=lambda r: (r.first.file_path, r.first.line, r.first.pos))
    baseline = _source_columns(ctx, src)
    known = {f.name for f in baseline.fields} if baseline is not None else None
    first_file = firsts[0].first.file_path if firsts else None
    reserved = {c.lower() for c in TB.METADATA_COLUMNS}
    used: set[str] = set()
    columns: list[tuple[str, Column]] = []
    rescued_keys: list[str] = []
    drift: list[DriftEvent] = []
    for row in firsts:
        name = delta_safe_name(row.key)
        if name.lower() in reserved or name.lower() in used:
            rescued_keys.append(row.key)
            drift.append(DriftEvent(row.first.file_path, row.key, None, "string", "name_conflict_rescued"))
            continue
        used.add(name.lower())
        columns.append((name, F.try_element_at(F.col("fields"), F.lit(row.key))))
        is_new = (name not in known) if known is not None else row.first.file_path != first_file
        if is_new:
            drift.append(DriftEvent(row.first.file_path, name, None, "string", "added_column"))
    rescued = (
        F.to_json(F.map_filter("fields", lambda k, _v: k.isin(rescued_keys))) if rescued_keys else F.lit(None).cast("string")
    )
    records = checked.withColumn("rescued", F.when(F.col("reason").isNull(), rescued))
    return _Classified(records, tuple(columns), tuple(drift), issues)


def _classify_parquet(ctx: _RunContext, src: SourceConfig, files: Sequence[LandingFile]) -> _Classified:
    issues = {f.path: f.issue for f in files if f.issue}
    readable = [f.path for f in files if not f.issue]
    batch = read_parquet_files(ctx.spark, readable, _source_columns(ctx, src), frozenset(TB.METADATA_COLUMNS))
    issues.update(batch.unreadable)
    if batch.records is None:
        return _Classified(None, (), batch.drift, issues)
    recs = batch.records

    def column(name: str | None) -> Column | None:
        return F.col(f"`{name}`") if name is not None and name in batch.columns else None

    key_parts = [column(_source_field(src, k)) for k in src.key_columns]
    key = None if any(p is None for p in key_parts) else composite_key(key_parts)
    event = column(_source_field(src, src.event_time_column))
    country_col = column(_source_field(src, src.country_column))
    country = country_col.cast("string") if country_col is not None else F.lit(src.country).cast("string")
    key_str = key.cast("string") if key is not None else F.lit(None).cast("string")
    reason = record_reason(
        F.when(F.octet_length("value") > src.max_record_bytes, F.lit(R.OVERSIZED)),
        key=key_str,
        event_time=event,
        timestamp_format=src.timestamp_format,
        country=country if country_col is not None else None,
    )
    records = recs.select(
        "file_path", "line", "value", reason.alias("reason"), key_str.alias("record_key"), country.alias("country"),
        "rescued", F.struct(*[F.col(f"`{c}`") for c in batch.columns]).alias("rec"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    columns = tuple((c, F.col("rec").getField(c)) for c in batch.columns)
    return _Classified(records, columns, batch.drift, issues)


# ---------------------------------------------------------------------- output frames
def _bronze_frame(ctx: _RunContext, src: SourceConfig, plan: _Plan, c: _Classified, files_df: DataFrame) -> DataFrame:
    good = c.records.where(F.col("reason").isNull()).join(F.broadcast(files_df), "file_path", "left")
    total_bytes = sum(f.size for f in plan.files)
    n_files = max(1, math.ceil(total_bytes / (ctx.cfg.bronze.target_file_mb * 1024 * 1024)))
    return good.select(
        *[expr.alias(name) for name, expr in c.columns],
        F.lit(src.name).alias("_source"),
        F.col("file_path").alias("_file_path"),
        "_file_size",
        "_file_mtime",
        "_file_hash",
        F.col("line").cast("long").alias("_line"),
        F.lit(ctx.run_id).alias("_run_id"),
        F.lit(ctx.started_at).cast("timestamp").alias("_ingested_at"),
        F.col("country").alias("_country"),
        F.col("record_key").alias("_record_key"),
        "_redelivery",
        F.col("rescued").alias("_rescued_data"),
        F.lit(plan.batch).cast("long").alias("_batch"),
        F.lit(ctx.run_date).cast("date").alias("ingest_date"),
    ).coalesce(n_files)


def _raw_text(value: Column) -> tuple[Column, Column]:
    as_bytes = ~F.is_valid_utf8(value) | (F.instr(value, "\u0000") > 0)
    raw = F.when(as_bytes, F.base64(F.substring(value.cast("binary"), 1, RAW_TEXT_BOUND))).otherwise(F.substring(value, 1, RAW_TEXT_BOUND))
    return raw, F.when(as_bytes, F.lit("base64")).otherwise(F.lit("utf-8"))


def _quarantine_frame(ctx: _RunContext, src: SourceConfig, plan: _Plan, c: _Classified) -> DataFrame:
    file_rows = [
        (src.name, path, None, "file", reason, None, None, ctx.run_id, plan.batch, ctx.started_at, ctx.run_date)
        for path, reason in sorted(c.file_issues.items())
    ]
    frame = ctx.spark.createDataFrame(file_rows, TB.QUARANTINE_SCHEMA)
    if c.records is None:
        return frame
    raw, encoding = _raw_text(F.col("value"))
    bad = c.records.where(F.col("reason").isNotNull()).select(
        F.lit(src.name).alias("source"),
        "file_path",
        F.col("line").cast("long").alias("line"),
        F.lit("record").alias("level"),
        "reason",
        raw.alias("raw"),
        encoding.alias("raw_encoding"),
        F.lit(ctx.run_id).alias("run_id"),
        F.lit(plan.batch).cast("long").alias("batch"),
        F.lit(ctx.started_at).cast("timestamp").alias("ingested_at"),
        F.lit(ctx.run_date).cast("date").alias("ingest_date"),
    )
    return bad.unionByName(frame)


# ---------------------------------------------------------------------- one source
def _ingest_source(ctx: _RunContext, src: SourceConfig) -> SourceReport:
    started = time.monotonic()
    plan = _plan(ctx, src)
    if not plan.files:
        log.info("source %s: nothing new to ingest", src.name)
        return SourceReport(src.name, None, False, plan.files_seen, 0, plan.files_seen, 0, 0, 0, 0, round(time.monotonic() - started, 3))
    classified = (_classify_parquet if src.format == "parquet" else _classify_text)(ctx, src, plan.files)
    try:
        report = _commit_batch(ctx, src, plan, classified, started)
    finally:
        if classified.records is not None:
            classified.records.unpersist()
    return report


def _commit_batch(ctx: _RunContext, src: SourceConfig, plan: _Plan, c: _Classified, started: float) -> SourceReport:
    txn = Txn(f"bronze:{src.name}", plan.batch)
    expected: dict[str, tuple[int, int]] = {}  # path -> (read, good)
    if c.records is not None:
        for row in c.records.groupBy("file_path").agg(
            F.count(F.lit(1)).alias("n"), F.count_if(F.col("reason").isNull()).alias("good")
        ).collect():
            expected[row.file_path] = (row.n, row.good)
    rows_read = sum(n for n, _ in expected.values())
    rows_good = sum(g for _, g in expected.values())
    files_df = ctx.spark.createDataFrame(
        [(f.path, f.size, f.mtime, f.content_hash, f.path in plan.redelivered) for f in plan.files],
        "file_path string, _file_size long, _file_mtime timestamp, _file_hash string, _redelivery boolean",
    )
    if c.drift:
        for d in c.drift:
            log.warning("source %s schema drift in %s: %s %s -> %s (%s)", src.name, d.file_path, d.column, d.old_type, d.new_type, d.action)
        drift_rows = [
            (src.name, d.file_path, d.column, d.old_type, d.new_type, d.action, ctx.run_id, plan.batch, ctx.started_at) for d in c.drift
        ]
        ctx.lake.append(TB.OPS, TB.DRIFT_TABLE, ctx.spark.createDataFrame(drift_rows, TB.DRIFT_SCHEMA), txn=txn)
    suppressed: dict[str, int] = {}  # path -> rows of erased subjects kept out
    rows_bad = rows_read - rows_good
    if rows_bad or c.file_issues:
        quarantine, dropped_bad = _suppressed_quarantine(ctx, src, _quarantine_frame(ctx, src, plan, c))
        if dropped_bad is not None:
            suppressed = {r["file_path"]: r["count"] for r in dropped_bad.groupBy("file_path").count().collect()}
        if sum(suppressed.values()) < rows_bad or c.file_issues:
            _quarantine_lake(ctx, src).append(TB.BRONZE, TB.QUARANTINE_TABLE, quarantine, partition_by=TB.QUARANTINE_PARTITION_BY, txn=txn)
    suppressed_bad = sum(suppressed.values())
    if rows_good:
        kept, dropped = _suppressed_split(ctx, src, _bronze_frame(ctx, src, plan, c, files_df))
        if dropped is not None:
            for r in dropped.groupBy("_file_path").count().collect():
                suppressed[r["_file_path"]] = suppressed.get(r["_file_path"], 0) + r["count"]
        if sum(suppressed.values()) - suppressed_bad < rows_good:
            _append_resident(ctx, src, kept, txn)
    fault_point("bronze.after_data_commit")
    counts = _verify_counts(ctx, src, plan, expected, suppressed)
    final = [
        _log_row(src.name, f, TB.STATUS_INGESTED, plan.batch, f.path in plan.redelivered, ctx, counts.get(f.path, (0, 0, 0, 0)))
        for f in plan.files
    ]
    ctx.lake.append(TB.OPS, TB.LOG_TABLE, ctx.spark.createDataFrame(final, TB.LOG_SCHEMA), txn=txn)
    report = SourceReport(
        source=src.name,
        batch=plan.batch,
        recovered=plan.recovered,
        files_seen=plan.files_seen,
        files_ingested=len(plan.files),
        files_skipped=plan.files_seen - len(plan.files),
        files_quarantined=len(c.file_issues),
        rows_read=rows_read,
        rows_bronze=rows_good - (sum(suppressed.values()) - suppressed_bad),
        rows_quarantined=rows_bad - suppressed_bad,
        seconds=round(time.monotonic() - started, 3),
        rows_suppressed=sum(suppressed.values()),
    )
    log.info("source %s batch %d: %s", src.name, plan.batch, report)
    return report


def _append_resident(ctx: _RunContext, src: SourceConfig, kept: DataFrame, txn: Txn) -> None:
    """Append the batch's good rows to bronze; with ``privacy.residency``, each country's rows to its own lakehouse."""
    if not ctx.resident:
        ctx.lake.append(TB.BRONZE, src.name, kept, partition_by=ctx.cfg.bronze.partition_by, txn=txn)
        return
    from cdp_spark.privacy.residency import residency_split
    from cdp_spark.standardize import country_code

    iso = "_residency_country"
    parts = residency_split(kept.withColumn(iso, country_code(F.col("_country"))), iso, ctx.cfg)
    for root, part in parts.items():
        lake = ctx.resident.get(root, ctx.lake)
        if not part.isEmpty():
            lake.append(TB.BRONZE, src.name, part.drop(iso), partition_by=ctx.cfg.bronze.partition_by, txn=txn)
            log.info("source %s: rows for %s written to %s", src.name, "the home lakehouse" if lake is ctx.lake else "their in-country lakehouse", root)


def _quarantine_lake(ctx: _RunContext, src: SourceConfig) -> Lake:
    """Where a source's unparseable rows go: a source with a fixed resident country keeps them in-country.

    Rows of a source whose country is a column cannot be placed (the country is in the unparsed text):
    they stay in the home lakehouse; give in-country data its own source (``country: CH``) to keep them in.
    """
    root = ctx.cfg.privacy.residency.get((src.country or "").upper())
    return ctx.resident.get(root, ctx.lake) if root else ctx.lake


def _committed_counts(ctx: _RunContext, layer: str, name: str, predicate: Column, path_col: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lake in ctx.lakes():
        if lake.exists(layer, name):
            for r in lake.read(layer, name).where(predicate).groupBy(path_col).count().collect():
                counts[r[path_col]] = counts.get(r[path_col], 0) + r["count"]
    return counts


def _verify_counts(
    ctx: _RunContext, src: SourceConfig, plan: _Plan, expected: dict[str, tuple[int, int]], suppressed: dict[str, int]
) -> dict[str, tuple[int, int, int, int]]:
    """Per file (read, bronze, quarantined, suppressed) as committed; raises unless read = bronze +
    quarantined + suppressed (rows of erased subjects, counted but kept out)."""
    in_bronze = _committed_counts(ctx, TB.BRONZE, src.name, F.col("_batch") == plan.batch, "_file_path")
    in_quarantine = _committed_counts(
        ctx,
        TB.BRONZE,
        TB.QUARANTINE_TABLE,
        (F.col("source") == src.name) & (F.col("batch") == plan.batch) & (F.col("level") == "record"),
        "file_path",
    )
    counts: dict[str, tuple[int, int, int, int]] = {}
    mismatches = []
    for f in plan.files:
        read = expected.get(f.path, (0, 0))[0]
        bronze, quarantined, kept_out = in_bronze.get(f.path, 0), in_quarantine.get(f.path, 0), suppressed.get(f.path, 0)
        counts[f.path] = (read, bronze, quarantined, kept_out)
        log.debug("source %s file %s: read=%d bronze=%d quarantined=%d suppressed=%d", src.name, f.path, read, bronze, quarantined, kept_out)
        if read != bronze + quarantined + kept_out:
            mismatches.append(f"{f.path}: read {read} != bronze {bronze} + quarantined {quarantined} + suppressed {kept_out}")
    if mismatches:
        raise IngestCountError(
            f"source {src.name} batch {plan.batch}: rows read differ from rows committed ({'; '.join(mismatches)}); "
            "the ingestion log was not updated, inspect bronze and quarantine for this batch before rerunning"
        )
    return counts
