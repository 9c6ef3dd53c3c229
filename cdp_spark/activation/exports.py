"""Consent-aware activation exports: segment members → files for a destination, plus a manifest.

Per destination (``gold.exports`` in config) and run, ``<paths.exports>/<destination>/<run_id>/``
holds one data file (CSV with header, Parquet or JSON lines) and ``manifest.json``: destination,
run id, created_at, mode, format, purpose, segments, rows (and added/removed for incremental
exports) and every data file's name, size and SHA-256.

Who is exported: current members of any of the destination's segments whose CURRENT consent for
the destination's purpose is granted (``consent_<purpose>`` of the profile is ``True``). No consent
record means not allowed. Every row has ``customer_uid``, then the configured fields: profile
columns, ``segments`` (the destination's segments the customer is in), ``email_sha256`` and
``phone_sha256``: SHA-256 hex of the most recently seen email and phone, normalized the way the
destination's platform hashes them (``identifier_hashing``: ``google`` Customer Match — trimmed,
lower-cased, periods removed from gmail.com/googlemail.com local parts, phone E.164 with ``+``;
``meta`` Custom Audiences — trimmed, lower-cased, phone digits only without ``+`` or leading
zeros). An email whose own current consent event for the destination's purpose is a revocation
is never exported, even when a later grant on another subject makes the customer allowed.
Raw emails and phones are read from ``silver.pii_contacts`` only to hash them and never leave
this module (:func:`contact_rows` returns hashes).

``mode: incremental`` writes the rows added and removed since the destination's last export, with
an ``action`` column (``add``/``remove``); a customer whose exported fields changed is removed (as
exported before) and added (as now). ``gold.export_state`` keeps, per destination, the rows last
exported (``customer_uid, row_hash, payload``: the row as JSON) — both modes refresh it. Erasing a
customer must also delete their ``gold.export_state`` rows.

Exports are idempotent per (destination, run id): a run directory whose ``manifest.json`` names the
run is never rewritten (its files, manifest and a delivery marker stay as they are), and the
destination's state is kept when it already holds that run's rows, else rebuilt from the current
rows (the files were written but the state was not).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pyarrow import fs as pafs
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import ExportConfig
from cdp_spark.errors import ConfigError, MissingColumnsError, StorageError
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
MANIFEST = "manifest.json"
_EDGE_SPACE = r"^\s+|\s+$"
# a period in the local part of a gmail.com/googlemail.com address (the domain follows after the @)
_GMAIL_LOCAL_PERIOD = r"\.(?=[^@]*@(gmail|googlemail)\.com$)"


@dataclass(frozen=True)
class ExportResult:
    destination: str
    path: str
    rows: int
    added: int
    removed: int


def _trimmed_lower(col: Column) -> Column:
    return F.lower(F.regexp_replace(col, _EDGE_SPACE, ""))


def _phone_digits(col: Column) -> Column:
    """Digits only, without leading zeros (the country code comes first in E.164)."""
    return F.regexp_replace(F.regexp_replace(col, "[^0-9]", ""), "^0+", "")


def google_email(col: Column) -> Column:
    """Google Customer Match: trimmed, lower-cased, periods removed from gmail.com/googlemail.com local parts."""
    return F.regexp_replace(_trimmed_lower(col), _GMAIL_LOCAL_PERIOD, "")


def google_phone(col: Column) -> Column:
    """Google Customer Match: E.164 with its leading ``+``."""
    digits = _phone_digits(col)
    return F.when(digits != "", F.concat(F.lit("+"), digits))


def meta_email(col: Column) -> Column:
    """Meta Custom Audiences: trimmed and lower-cased, nothing else removed."""
    return _trimmed_lower(col)


def meta_phone(col: Column) -> Column:
    """Meta Custom Audiences: digits only with the country code, no ``+``, no leading zeros."""
    digits = _phone_digits(col)
    return F.when(digits != "", digits)


IDENTIFIER_HASHINGS: dict[str, tuple[Callable[[Column], Column], Callable[[Column], Column]]] = {
    "google": (google_email, google_phone),
    "meta": (meta_email, meta_phone),
}


def _sha256_of(value: Column) -> Column:
    return F.when(value.isNotNull() & (value != ""), F.sha2(value, 256))


def contact_rows(pii_contacts: DataFrame, identifiers: DataFrame, identity_map: DataFrame, consents: DataFrame) -> DataFrame:
    """One row per contact record, already hashed: ``customer_uid, recency, revoked_for`` and
    ``email_<hashing>``/``phone_<hashing>`` (SHA-256 hex) for every platform in :data:`IDENTIFIER_HASHINGS`.

    ``recency`` orders a customer's records (latest ``seen_at``, then source, record id);
    ``revoked_for`` lists the purposes for which the record's email (its ``silver.identifiers`` key)
    has a current revocation in ``silver.consents``.
    """
    missing = {"source", "record_id", "email_norm", "phone_e164"} - set(pii_contacts.columns)
    if missing:
        raise MissingColumnsError(missing, "silver.pii_contacts")
    per_record = identifiers.groupBy("source", "record_id").agg(
        F.max("seen_at").alias("_seen"),
        F.max(F.when(F.col("id_type") == "email", F.col("id_key"))).alias("_email_key"),
    )
    revoked = (
        consents.where(F.col("is_current") & (F.col("subject_type") == "email") & ~F.coalesce(F.col("granted"), F.lit(False)))
        .groupBy(F.col("subject_key").alias("_email_key"))
        .agg(F.collect_set("purpose").alias("_revoked"))
    )
    rows = (
        pii_contacts.join(identity_map.select("source", "record_id", "customer_uid"), ["source", "record_id"])
        .join(per_record, ["source", "record_id"], "left")
        .join(revoked, "_email_key", "left")
    )
    # The address as given (silver.pii_contacts.email_address) when silver has it: email_norm has
    # lost Gmail's dots and +tags, which Meta hashes as they are; older silver builds lack it.
    email = F.coalesce(F.col("email_address"), F.col("email_norm")) if "email_address" in pii_contacts.columns else F.col("email_norm")
    hashes = [
        _sha256_of(fn(value)).alias(f"{kind}_{name}")
        for name, fns in IDENTIFIER_HASHINGS.items()
        for kind, value, fn in (("email", email, fns[0]), ("phone", F.col("phone_e164"), fns[1]))
    ]
    return rows.select(
        "customer_uid",
        F.struct(F.col("_seen"), F.col("source"), F.col("record_id")).alias("recency"),
        F.coalesce(F.col("_revoked"), F.array().cast("array<string>")).alias("revoked_for"),
        *hashes,
    )


def hashed_contacts(contacts: DataFrame, *, purpose: str, hashing: str) -> DataFrame:
    """``customer_uid, email_sha256, phone_sha256`` for a destination: from :func:`contact_rows`, the
    hashes of ``hashing`` of the most recently seen record carrying each, skipping emails revoked for ``purpose``."""
    if hashing not in IDENTIFIER_HASHINGS:
        raise ConfigError(f"identifier_hashing {hashing!r} is unknown; use one of {', '.join(IDENTIFIER_HASHINGS)}")
    email, phone = F.col(f"email_{hashing}"), F.col(f"phone_{hashing}")
    email_usable = email.isNotNull() & ~F.array_contains(F.col("revoked_for"), purpose)

    def latest(value: Column, usable: Column) -> Column:
        return F.max_by(value, F.when(usable, F.col("recency")))

    return contacts.groupBy("customer_uid").agg(
        latest(email, email_usable).alias("email_sha256"),
        latest(phone, phone.isNotNull()).alias("phone_sha256"),
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
    with fs.open_output_stream(f"{base}/{MANIFEST}") as stream:
        stream.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))


def _written_manifest(directory: str, run_id: str) -> dict | None:
    """The manifest in ``directory`` if it names ``run_id`` (the run's export files are complete), else None."""
    fs, base = _filesystem(directory)
    path = f"{base}/{MANIFEST}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        text = stream.read().decode("utf-8")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError:
        log.warning("export %s: unreadable %s (an interrupted write?); writing the export again", directory, MANIFEST)
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("run_id") == run_id else None


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

    ``contacts`` comes from :func:`contact_rows`. Call :func:`check_export` for every destination first
    so a bad one fails before anything is written. A destination whose run directory already holds a
    manifest of ``run_id`` (a rerun of the run) is not written again: its counts come from that
    manifest and its state rows are kept when they are from ``run_id``, else rebuilt from the current rows.
    """
    spark = profile.sparkSession
    state = previous_state if previous_state is not None else spark.createDataFrame([], STATE_SCHEMA)
    results: list[ExportResult] = []
    states: list[DataFrame] = []
    hashed: dict[tuple[str, str], DataFrame] = {}
    computed_contacts: DataFrame | None = None

    def destination_rows(dest: ExportConfig) -> DataFrame:
        nonlocal computed_contacts
        key = (dest.purpose, dest.identifier_hashing)
        if key not in hashed:  # once per purpose and hashing, however many destinations share them
            if computed_contacts is None:  # only once some destination needs its rows (not on a complete rerun)
                computed_contacts = contacts.localCheckpoint()  # hashes only, no raw contact
            hashed[key] = hashed_contacts(computed_contacts, purpose=dest.purpose, hashing=dest.identifier_hashing).localCheckpoint()
        return export_rows(profile, members, hashed[key], dest).localCheckpoint()

    for dest in exports:
        directory = f"{root.rstrip('/')}/{dest.name}/{run_id}"
        previous = state.where(F.col("destination") == dest.name)
        written = _written_manifest(directory, run_id)
        if written is not None:
            counts = {k: int(written[k]) for k in ("rows", "added", "removed") if k in written}
            if previous.where(F.col("run_id") == run_id).limit(1).count() > 0:
                states.append(previous)
                log.info("export %s: run %s already written to %s and its state kept", dest.name, run_id, directory)
            else:
                states.append(new_state(destination_rows(dest), destination=dest.name, run_id=run_id, at=at))
                log.info("export %s: run %s already written to %s; state rebuilt from the current rows", dest.name, run_id, directory)
        else:
            rows = destination_rows(dest)
            if dest.mode == "incremental":
                delta = export_delta(rows, previous).localCheckpoint()
                by_action = {r["action"]: int(r["n"]) for r in delta.groupBy("action").agg(F.count(F.lit(1)).alias("n")).collect()}
                counts = {"added": by_action.get("add", 0), "removed": by_action.get("remove", 0)}
                counts["rows"] = counts["added"] + counts["removed"]
                write_export(delta, dest, directory, run_id=run_id, created_at=at, counts=counts)
            else:
                counts = {"rows": rows.count()}
                write_export(rows, dest, directory, run_id=run_id, created_at=at, counts=counts)
            states.append(new_state(rows, destination=dest.name, run_id=run_id, at=at))
            log.info("export %s: %s -> %s", dest.name, counts, directory)
        results.append(ExportResult(dest.name, directory, counts["rows"], counts.get("added", counts["rows"]), counts.get("removed", 0)))
    kept = state.where(~F.col("destination").isin(*[d.name for d in exports])) if exports else state
    for df in states:
        kept = kept.unionByName(df)
    return results, kept
