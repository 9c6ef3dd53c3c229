"""Consent-aware activation exports: segment members → files for a destination, plus a manifest.

Per destination (``gold.exports`` in config) and run, ``<paths.exports>/<destination>/<run_id>/``
holds one data file (CSV with header, Parquet or JSON lines) and ``manifest.json``: destination,
run id, created_at, mode, format, purpose, segments, rows (and added/removed for incremental
exports) and every data file's name, size and SHA-256.

Who is exported: current members of any of the destination's segments whose CURRENT consent for
the destination's purpose is granted (``consent_<purpose>`` of the profile is ``True``). No consent
record means not allowed. Every row has ``customer_uid``, then the configured fields: profile
columns, ``segments`` (the destination's segments the customer is in), ``email_sha256`` and
``phone_sha256``: SHA-256 hex of the normalized email (lower-cased, trimmed) and of the E.164
phone with its leading ``+`` (the form Google Customer Match documents), of the most recently seen
contact. Raw emails and phones are read from ``silver.pii_contacts`` only to hash them and never
leave this module.

``mode: incremental`` writes the rows added and removed since the destination's last export, with
an ``action`` column (``add``/``remove``); a customer whose exported fields changed is removed (as
exported before) and added (as now). ``gold.export_state`` keeps, per destination, the rows last
exported (``customer_uid, row_hash, payload``: the row as JSON) — both modes refresh it. Erasing a
customer must also delete their ``gold.export_state`` rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyarrow import fs as pafs
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import ExportConfig
from cdp_spark.errors import ConfigError, StorageError
from cdp_spark.profiles.consent import consent_column

log = logging.getLogger(__name__)

HASHED_FIELDS = ("email_sha256", "phone_sha256")
_RAW_CONTACT_FIELDS = ("email", "phone", "email_norm", "phone_e164")
STATE_SCHEMA = T.StructType(
    [
        T.StructField("destination", T.StringType(), False),
        T.StructField("customer_uid", T.StringType(), False),
        T.StructField("row_hash", T.StringType(), False),
        T.StructField("payload", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("exported_at", T.TimestampType(), False),
    ]
)
_SPARK_FORMATS = {"csv": "csv", "parquet": "parquet", "json": "json"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportResult:
    destination: str
    path: str
    rows: int
    added: int
    removed: int


def hashed_contacts(pii_contacts: DataFrame, identifiers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """``customer_uid, email_sha256, phone_sha256`` from the most recently seen record carrying each."""
    seen = identifiers.groupBy("source", "record_id").agg(F.max("seen_at").alias("_seen"))
    rows = pii_contacts.join(identity_map.select("source", "record_id", "customer_uid"), ["source", "record_id"]).join(
        seen, ["source", "record_id"], "left"
    )
    email = F.lower(F.trim(F.col("email_norm")))
    phone = F.trim(F.col("phone_e164"))

    def latest(value: Column) -> Column:
        return F.max_by(value, F.when(value.isNotNull() & (value != ""), F.struct(F.col("_seen"), F.col("source"), F.col("record_id"))))

    return rows.groupBy("customer_uid").agg(
        F.sha2(latest(email), 256).alias("email_sha256"),
        F.sha2(latest(phone), 256).alias("phone_sha256"),
    )


def check_export(dest: ExportConfig, *, profile_columns: Sequence[str], segments: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming the destination for unknown segments or fields, or raw contacts."""
    unknown_segments = [s for s in dest.segments if s not in segments]
    if unknown_segments:
        raise ConfigError(
            f"gold.exports[{dest.name!r}]: unknown segment(s) {', '.join(unknown_segments)}; configured: {', '.join(segments) or '(none)'}"
        )
    _check_fields(dest, profile_columns)


def _check_fields(dest: ExportConfig, profile_columns: Sequence[str]) -> None:
    where = f"gold.exports[{dest.name!r}]"
    raw = [f for f in dest.fields if f in _RAW_CONTACT_FIELDS]
    if raw:
        raise ConfigError(f"{where}: raw contact field(s) {', '.join(raw)} are never exported; use {', '.join(HASHED_FIELDS)}")
    known = set(profile_columns) | set(HASHED_FIELDS) | {"segments"}
    unknown = [f for f in dest.fields if f not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; use gold.customer_profile columns, segments, {', '.join(HASHED_FIELDS)}")


def export_rows(profile: DataFrame, members: DataFrame, contacts: DataFrame, dest: ExportConfig) -> DataFrame:
    """``customer_uid`` + ``dest.fields`` for consenting members of the destination's segments."""
    _check_fields(dest, profile.columns)
    in_segments = (
        members.where(F.col("segment").isin(*dest.segments))
        .groupBy("customer_uid")
        .agg(F.array_sort(F.collect_set("segment")).alias("segments"))
    )
    allowed = profile.where(F.coalesce(F.col(consent_column(dest.purpose)), F.lit(False)))
    joined = in_segments.join(allowed, "customer_uid").join(contacts, "customer_uid", "left")
    fields = [f for f in dest.fields if f != "customer_uid"]
    return joined.select("customer_uid", *fields)


def _row_hash(columns: Sequence[str]) -> Column:
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def export_delta(rows: DataFrame, state: DataFrame) -> DataFrame:
    """Rows added (``action='add'``) and removed (``'remove'``, as last exported) since ``state``."""
    cols = rows.columns
    current = rows.withColumn("_hash", _row_hash(cols))
    previous = state.select("customer_uid", F.col("row_hash").alias("_hash"), "payload")
    added = current.join(previous, ["customer_uid", "_hash"], "left_anti").select(*cols, F.lit("add").alias("action"))
    removed = (
        previous.join(current.select("customer_uid", "_hash"), ["customer_uid", "_hash"], "left_anti")
        .select(F.from_json("payload", rows.schema).alias("_row"))
        .select(*[F.col(f"_row.{c}").alias(c) for c in cols], F.lit("remove").alias("action"))
    )
    return added.unionByName(removed)


def new_state(rows: DataFrame, *, destination: str, run_id: str, at: datetime) -> DataFrame:
    """``gold.export_state`` rows for a destination after exporting ``rows``."""
    cols = rows.columns
    return rows.select(
        F.lit(destination).alias("destination"),
        "customer_uid",
        _row_hash(cols).alias("row_hash"),
        F.to_json(F.struct(*[F.col(c) for c in cols])).alias("payload"),
        F.lit(run_id).alias("run_id"),
        F.lit(at).cast("timestamp").alias("exported_at"),
    )


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path and not path.startswith("file://"):
        return pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
    return pafs.LocalFileSystem(), path.removeprefix("file://")


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _flat_for_csv(df: DataFrame) -> DataFrame:
    """CSV has no nested types: arrays, maps and structs become JSON text."""
    nested = (T.ArrayType, T.MapType, T.StructType)
    return df.select(*[F.to_json(F.col(f.name)).alias(f.name) if isinstance(f.dataType, nested) else F.col(f.name) for f in df.schema.fields])


def write_export(df: DataFrame, dest: ExportConfig, directory: str, *, run_id: str, created_at: datetime, counts: dict[str, int]) -> None:
    """Write ``df`` as one file of ``dest.format`` into ``directory`` and the manifest next to it."""
    out = _flat_for_csv(df) if dest.format == "csv" else df
    writer = out.repartition(1).sortWithinPartitions(*[c for c in ("action", "customer_uid") if c in out.columns]).write.mode("overwrite")
    if dest.format == "csv":
        writer = writer.option("header", "true").option("escape", '"')  # RFC 4180: quotes inside fields are doubled
    writer.format(_SPARK_FORMATS[dest.format]).save(directory)
    fs, base = _filesystem(directory)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=False))
    data_files = sorted(i for i in infos if i.type == pafs.FileType.File and i.base_name.startswith("part-"))
    if not data_files:
        raise StorageError(f"export {dest.name}: Spark wrote no data file into {directory}")
    manifest = {
        "destination": dest.name,
        "run_id": run_id,
        "created_at": created_at.isoformat(),
        "mode": dest.mode,
        "format": dest.format,
        "purpose": dest.purpose,
        "segments": list(dest.segments),
        **counts,
        "files": [{"name": i.base_name, "bytes": i.size, "sha256": _sha256(fs, i.path)} for i in data_files],
    }
    with fs.open_output_stream(f"{base}/manifest.json") as stream:
        stream.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))


def run_exports(
    profile: DataFrame,
    members: DataFrame,
    contacts: DataFrame,
    previous_state: DataFrame | None,
    exports: Sequence[ExportConfig],
    *,
    root: str,
    run_id: str,
    at: datetime,
) -> tuple[list[ExportResult], DataFrame]:
    """Write every destination's export; return the results and the full new ``gold.export_state``.

    Call :func:`check_export` for every destination first so a bad one fails before anything is written.
    """
    spark = profile.sparkSession
    state = previous_state if previous_state is not None else spark.createDataFrame([], STATE_SCHEMA)
    results: list[ExportResult] = []
    states: list[DataFrame] = []
    for dest in exports:
        rows = export_rows(profile, members, contacts, dest).localCheckpoint()
        directory = f"{root.rstrip('/')}/{dest.name}/{run_id}"
        if dest.mode == "incremental":
            delta = export_delta(rows, state.where(F.col("destination") == dest.name)).localCheckpoint()
            by_action = {r["action"]: int(r["n"]) for r in delta.groupBy("action").agg(F.count(F.lit(1)).alias("n")).collect()}
            counts = {"added": by_action.get("add", 0), "removed": by_action.get("remove", 0)}
            counts["rows"] = counts["added"] + counts["removed"]
            write_export(delta, dest, directory, run_id=run_id, created_at=at, counts=counts)
        else:
            counts = {"rows": rows.count()}
            write_export(rows, dest, directory, run_id=run_id, created_at=at, counts=counts)
        states.append(new_state(rows, destination=dest.name, run_id=run_id, at=at))
        results.append(ExportResult(dest.name, directory, counts["rows"], counts.get("added", counts["rows"]), counts.get("removed", 0)))
        log.info("export %s: %s -> %s", dest.name, counts, directory)
    kept = state.where(~F.col("destination").isin(*[d.name for d in exports])) if exports else state
    for df in states:
        kept = kept.unionByName(df)
    return results, kept
