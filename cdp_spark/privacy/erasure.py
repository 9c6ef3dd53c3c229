"""Right to erasure (GDPR Art. 17, KVKK Art. 7): ``forget`` a subject everywhere.

Resolution: subject → node key → ``gold.identity_nodes`` → ``customer_uid`` → every
``(source, record_id)`` in ``gold.identity_map``, plus the records carrying the subject's or the
customer's identifier keys in ``silver.identifiers`` even when unresolved (blocklisted shared
identifiers are never followed). Then, in this order: the subject's
identifier keys go to ``ops.suppression`` (so a crash half-way cannot let them back in), rows are
deleted from bronze, ``bronze.quarantine``, silver and gold, undelivered export files are
rewritten, every table that lost rows is vacuumed, and ``ops.erasure_log`` records what was done
with the subject only as a keyed hash. See docs/privacy.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.lake import Lake
from cdp_spark.ops import lake_for
from cdp_spark.privacy import _exports
from cdp_spark.privacy._delete import KeySet, Predicates, any_of, delete_where, key_set
from cdp_spark.pipeline.silver import IDENTIFIER_VALUE_COLUMNS, RECORD_ID_TYPE, identifier_rows
from cdp_spark.privacy._identifiers import ID_TYPES
from cdp_spark.privacy.pseudonymize import load_secret
from cdp_spark.privacy.subjects import CUSTOMER, IDENTIFIER, RECORD, parse_subject, subject_frame
from cdp_spark.privacy.suppression import SUPPRESSION_SCHEMA

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
CONSENT_SUBJECT_TYPES = ("customer_id", "email")  # silver.consents subject types
MIN_NEEDLE = 6  # shortest raw value matched inside quarantined text (shorter ones match too much)
ERASURE_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("subject_hash", T.StringType(), False),
        T.StructField("subject_type", T.StringType(), False),
        T.StructField("erased_at", T.TimestampType(), False),
        T.StructField("customers", T.LongType(), False),
        T.StructField("records", T.LongType(), False),
        T.StructField("batch_subjects", T.LongType(), False),
        T.StructField("rows_removed", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("exports_rewritten", T.LongType(), False),
        T.StructField("exports_delivered", T.ArrayType(T.StringType()), False),
    ]
)


@dataclass(frozen=True)
class ErasureReport:
    run_id: str
    subjects: int
    customers: int
    records: int
    rows_removed: dict[str, int] = field(default_factory=dict)  # "layer.table" -> rows deleted
    files_vacuumed: dict[str, int] = field(default_factory=dict)
    exports_rewritten: dict[str, int] = field(default_factory=dict)  # run directory -> rows removed
    exports_delivered: tuple[str, ...] = ()  # delivered run directories that held an erased customer
    suppressed_keys: int = 0
    seconds: float = 0.0


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b), frames)


def _table(lake: Lake, layer: str, name: str) -> DataFrame | None:
    return lake.read(layer, name) if lake.exists(layer, name) else None


def _history_identifiers(lake: Lake, key: bytes) -> DataFrame | None:
    """``source, record_id, id_type, id_key`` of every version in ``silver.customer_record_history``,
    keyed by silver's own :func:`identifier_rows`. ``silver.identifiers`` holds a person record's
    latest version only; an address the record carried before (a typo since corrected, an old
    e-mail) is found here."""
    history = _table(lake, "silver", "customer_record_history")
    if history is None or not set(IDENTIFIER_VALUE_COLUMNS.values()) & set(history.columns):
        return None
    rows = identifier_rows(history, key=key, ts_col="updated_at")
    return rows.where(F.col("id_type") != RECORD_ID_TYPE).select("source", "record_id", "id_type", "id_key")


def _unblocked(keys: DataFrame, lake: Lake) -> DataFrame:
    """``keys`` (``id_type, id_key``...) minus the identifiers of ``gold.identity_blocklist``: shared or
    junk values never identify one person."""
    blocked = _table(lake, "gold", "identity_blocklist")
    if blocked is None:
        return keys
    return keys.join(blocked.select("node"), F.concat(F.col("id_type"), F.lit(":"), F.col("id_key")) == F.col("node"), "left_anti")


def _resolve(subj: DataFrame, lake: Lake, history: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """``(n, customer_uid)`` and ``(n, source, record_id)`` linked to each subject.

    A person record that carried the subject's identifier in any version (``history``, from
    :func:`_history_identifiers`) counts as the subject's record, as if it had been named: it and the
    customer it resolved to are erased, unless the identifier is blocklisted (as in the graph).
    """
    nodes, imap, idents = _table(lake, "gold", "identity_nodes"), _table(lake, "gold", "identity_map"), _table(lake, "silver", "identifiers")
    ids = subj.where(F.col("kind") == IDENTIFIER).select("n", "id_type", "id_key")
    recs = subj.where(F.col("kind") == RECORD).select("n", "source", "record_id")
    if history is not None:
        recs = recs.unionByName(history.join(F.broadcast(_unblocked(ids, lake)), ["id_type", "id_key"]).select("n", "source", "record_id"))
    uid_links = [subj.where(F.col("kind") == CUSTOMER).select("n", "customer_uid")]
    if nodes is not None:
        node = F.concat(F.col("id_type"), F.lit(":"), F.col("id_key"))
        uid_links.append(ids.join(nodes.select("node", "customer_uid"), node == F.col("node")).select("n", "customer_uid"))
    if imap is not None:
        uid_links.append(recs.join(imap.select("source", "record_id", "customer_uid"), ["source", "record_id"]).select("n", "customer_uid"))
    uids = _union(uid_links).distinct().localCheckpoint()
    rec_links = [recs]
    if imap is not None:
        rec_links.append(uids.join(imap.select("customer_uid", "source", "record_id"), "customer_uid").select("n", "source", "record_id"))
    if idents is not None:
        rec_links.append(ids.join(idents.select("id_type", "id_key", "source", "record_id"), ["id_type", "id_key"]).select("n", "source", "record_id"))
    return uids, _union(rec_links).distinct().localCheckpoint()


def _identifier_keys(subj: DataFrame, records: DataFrame, lake: Lake, history: DataFrame | None) -> DataFrame:
    """``n, id_type, id_key``: every identifier of the subjects and of their records (in any version of
    a person record), minus blocklisted ones."""
    keys = [subj.where(F.col("kind") == IDENTIFIER).select("n", "id_type", "id_key")]
    for table in (_table(lake, "silver", "identifiers"), history):
        if table is not None:
            keys.append(table.join(records, ["source", "record_id"]).select("n", "id_type", "id_key"))
    return _unblocked(_union(keys).distinct(), lake).localCheckpoint()


def _with_unresolved(records: DataFrame, keys: DataFrame, lake: Lake) -> DataFrame:
    """Add the records that carry one of ``keys`` but were not resolved to the customer (one hop)."""
    idents = _table(lake, "silver", "identifiers")
    if idents is None:
        return records
    carrying = idents.join(keys, ["id_type", "id_key"]).select("n", "source", "record_id")
    return records.unionByName(carrying).distinct().localCheckpoint()


def _suppression_rows(subj: DataFrame, keys: DataFrame, *, run_id: str, at: datetime) -> DataFrame:
    """``ops.suppression`` rows: one per identifier key."""
    return (
        keys.join(subj.select("n", "subject_hash"), "n")
        .groupBy("id_type", "id_key")
        .agg(F.min("subject_hash").alias("subject_hash"))
        .select("id_type", "id_key", "subject_hash", F.lit(run_id).alias("run_id"), F.lit(at).cast("timestamp").alias("suppressed_at"))
        .localCheckpoint()
    )


def _quarantine_needles(spark: SparkSession, cfg: CdpConfig, lake: Lake, records: KeySet, raw_subjects: Sequence[str]) -> DataFrame:
    """``_q_source, _q_needle``: raw identifier values and record keys of the erased bronze rows
    (lower-cased, at least MIN_NEEDLE characters), and the subjects' own values for every source."""
    frames = [spark.createDataFrame([(None, v.lower()) for v in raw_subjects], "_q_source string, _q_needle string")]
    sources = {s.name: s for s in cfg.sources}
    for source in sorted({r[0] for r in records.rows} if records.rows is not None else (r[0] for r in records.frame.select("source").distinct().collect())):
        if source == QUARANTINE or not lake.exists("bronze", source):
            continue
        bronze = lake.read("bronze", source)
        mapping = sources[source].columns if source in sources else {}
        raw_cols = [c for c in bronze.columns if c in ID_TYPES or mapping.get(c) in ID_TYPES] + ["_record_key"]
        linked = bronze.join(records.frame.where(F.col("source") == source).select(F.col("record_id").alias("_record_key")), "_record_key", "left_semi")
        values = linked.select(F.explode(F.array(*[F.lower(F.trim(F.col(f"`{c}`").cast("string"))) for c in raw_cols])).alias("_q_needle"))
        frames.append(values.select(F.lit(source).alias("_q_source"), "_q_needle"))
    return _union(frames).where(F.length("_q_needle") >= MIN_NEEDLE).distinct().localCheckpoint()


def forget(spark: SparkSession, cfg: CdpConfig, subjects: Sequence[str], *, run_id: str) -> ErasureReport:
    """Erase every record linked to the subjects from bronze, silver, gold and undelivered exports.

    ``subjects``: ``email:<address>``, ``phone:<E.164>`` or ``phone:<CC>:<national>``,
    ``customer_uid:<uid>``, ``<source>:<record_id>`` or another identifier type
    (``customer_id:``, ``loyalty_id:``, ``device_id:``, ``cookie_id:``, ``legacy_id:``); see
    :func:`read_requests` for batch files. Invalid subjects raise ``ErasureRequestError`` before
    anything is changed. Tables that lost rows are vacuumed with ``privacy.vacuum_retention_hours``.
    """
    started = time.monotonic()
    at = datetime.now(timezone.utc).replace(tzinfo=None)
    lake = lake_for(spark, cfg, run_id=run_id, stage="privacy")
    bronze_tables = [t for t in lake.tables("bronze") if t != QUARANTINE]
    parsed = [parse_subject(s, sources={src.name for src in cfg.sources} | set(bronze_tables), where=f"subject #{i + 1}") for i, s in enumerate(subjects)]
    if not parsed:
        return ErasureReport(run_id, 0, 0, 0)
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=cfg.spark.mode == "embedded")
    bound = cfg.privacy.erasure_in_list_max
    subj = subject_frame(spark, parsed, key=key, gmail_rule=cfg.silver.gmail_normalization)

    # Lazy, scanned by both steps below: re-reading the versions is cheaper than materializing their keys.
    history = _history_identifiers(lake, key)
    subject_uids, subject_records = _resolve(subj, lake, history)
    id_keys = _identifier_keys(subj, subject_records, lake, history)
    subject_records = _with_unresolved(subject_records, id_keys, lake)
    uids = key_set(subject_uids.select("customer_uid"), bound=bound)
    records = key_set(subject_records.select("source", "record_id"), bound=bound)
    suppression = _suppression_rows(subj, id_keys, run_id=run_id, at=at)
    consent_keys = key_set(
        suppression.where(F.col("id_type").isin(*CONSENT_SUBJECT_TYPES)).select(F.col("id_type").alias("subject_type"), F.col("id_key").alias("subject_key")),
        bound=bound,
    )
    raw_values = [s.value for s in parsed if s.kind == IDENTIFIER]
    needles = _quarantine_needles(spark, cfg, lake, records, raw_values)
    suppressed_n = suppression.count()
    log.info("erasure %s: %d subject(s) -> %d customer(s), %d record(s), %d identifier key(s)", run_id, len(parsed), uids.size, records.size, suppressed_n)
    if cfg.privacy.suppression_enabled and suppressed_n:
        lake.upsert("ops", "suppression", suppression.select(*SUPPRESSION_SCHEMA.fieldNames()), keys=["id_key"])

    removed: dict[str, int] = {}
    preds = Predicates(spark)
    with preds.scope():
        for name in bronze_tables:
            if "_record_key" in lake.read("bronze", name).columns:
                mine = records.restrict("source", name, keep=["record_id"])
                removed[f"bronze.{name}"] = delete_where(lake, "bronze", name, preds.isin(["_record_key"], mine))
        if lake.exists("bronze", QUARANTINE):
            needles.createOrReplaceTempView(view := f"_cdp_needles_{uuid.uuid4().hex}")
            try:
                predicate = f"EXISTS (SELECT 1 FROM {view} WHERE (_q_source IS NULL OR _q_source = source) AND instr(lower(raw), _q_needle) > 0)"
                removed[f"bronze.{QUARANTINE}"] = delete_where(lake, "bronze", QUARANTINE, predicate)
            finally:
                spark.catalog.dropTempView(view)
        for layer in ("silver", "gold"):
            for name in lake.tables(layer):
                cols = set(lake.read(layer, name).columns)
                predicate = any_of(
                    preds.isin(["customer_uid"], uids) if "customer_uid" in cols else None,
                    preds.isin(["source", "record_id"], records) if {"source", "record_id"} <= cols else None,
                    preds.isin(["subject_type", "subject_key"], consent_keys) if {"subject_type", "subject_key"} <= cols else None,
                )
                if predicate is not None:
                    removed[f"{layer}.{name}"] = delete_where(lake, layer, name, predicate)

    rewritten: dict[str, int] = {}
    delivered: list[str] = []
    if uids.size:
        for run in _exports.export_runs(cfg.paths.exports, marker=cfg.privacy.delivered_marker):
            if run.delivered:
                if _exports.count_rows_of(spark, run, uids.frame):
                    delivered.append(run.directory)
                    log.warning("export %s was delivered before this erasure: tell its recipient to erase the customer(s)", run.directory)
            elif n := _exports.rewrite_without(spark, run, uids.frame, run_id=run_id):
                rewritten[run.directory] = n

    vacuumed = {
        label: len(lake.vacuum(*label.split(".", 1), retention_hours=cfg.privacy.vacuum_retention_hours)) for label, n in removed.items() if n
    }
    removed = {k: v for k, v in removed.items() if v}
    _write_log(spark, lake, subj, subject_uids, subject_records, removed, rewritten, delivered, run_id=run_id, at=at, batch=len(parsed))
    report = ErasureReport(
        run_id=run_id,
        subjects=len(parsed),
        customers=uids.size,
        records=records.size,
        rows_removed=removed,
        files_vacuumed=vacuumed,
        exports_rewritten=rewritten,
        exports_delivered=tuple(delivered),
        suppressed_keys=suppressed_n if cfg.privacy.suppression_enabled else 0,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("erasure %s done in %.1fs: %d row(s) removed from %d table(s)", run_id, report.seconds, sum(removed.values()), len(removed))
    return report


def _write_log(
    spark: SparkSession,
    lake: Lake,
    subj: DataFrame,
    subject_uids: DataFrame,
    subject_records: DataFrame,
    removed: dict[str, int],
    rewritten: dict[str, int],
    delivered: list[str],
    *,
    run_id: str,
    at: datetime,
    batch: int,
) -> None:
    customers = subject_uids.groupBy("n").agg(F.count(F.lit(1)).alias("customers"))
    records = subject_records.groupBy("n").agg(F.count(F.lit(1)).alias("records"))
    removed_map = F.create_map(*[x for k, v in sorted(removed.items()) for x in (F.lit(k), F.lit(v).cast("long"))]) if removed else F.lit(None)
    rows = subj.join(customers, "n", "left").join(records, "n", "left").select(
        F.lit(run_id).alias("run_id"),
        "subject_hash",
        F.coalesce(F.col("id_type"), F.col("kind")).alias("subject_type"),
        F.lit(at).cast("timestamp").alias("erased_at"),
        F.coalesce(F.col("customers"), F.lit(0)).cast("long").alias("customers"),
        F.coalesce(F.col("records"), F.lit(0)).cast("long").alias("records"),
        F.lit(batch).cast("long").alias("batch_subjects"),
        F.coalesce(removed_map, F.create_map().cast("map<string,bigint>")).alias("rows_removed"),
        F.lit(sum(rewritten.values())).cast("long").alias("exports_rewritten"),
        F.array(*[F.lit(d) for d in delivered]).cast("array<string>").alias("exports_delivered"),
    )
    lake.append("ops", "erasure_log", rows)
