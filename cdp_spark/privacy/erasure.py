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
from cdp_spark.errors import CdpError, StorageError
from cdp_spark.identity.graph import blocklist, junk_nodes, node_col
from cdp_spark.lake import Lake
from cdp_spark.ops import lake_for
from cdp_spark.pipeline.silver import IDENTIFIER_VALUE_COLUMNS, RECORD_ID_TYPE, identifier_rows, pending_batch, processed_versions
from cdp_spark.privacy import _exports
from cdp_spark.privacy._delete import KeySet, Predicates, any_of, delete_where, key_set
from cdp_spark.privacy._identifiers import ID_TYPES
from cdp_spark.privacy.pseudonymize import load_secret
from cdp_spark.privacy.subjects import CUSTOMER, IDENTIFIER, RECORD, parse_subject, subject_frame
from cdp_spark.privacy.suppression import SUPPRESSION_SCHEMA, source_identifier_keys, suppress_source_rows
from cdp_spark.quality.gate import REJECTS_TABLE

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
CONSENT_SUBJECT_TYPES = ("customer_id", "email")  # silver.consents subject types
MAX_MERGE_HOPS = 32  # longest chain of merges followed from a customer uid
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
    blocked_subjects: tuple[int, ...] = ()  # 1-based positions of subjects naming a shared or junk identifier


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


def _blocked_nodes(spark: SparkSession, cfg: CdpConfig, lake: Lake, key: bytes) -> DataFrame:
    """``node``: identifiers that never identify one person, as in the identity graph: the shared ones of
    ``gold.identity_blocklist`` and the configured junk values (``identity.junk_values``), which also
    covers junk that only an earlier record version carried."""
    frames = [junk_nodes(spark, cfg.identity.junk_values, key)]
    blocked = _table(lake, "gold", "identity_blocklist")
    if blocked is not None:
        frames.append(blocked.select("node"))
    return _union(frames).distinct().localCheckpoint()


def _unblocked(keys: DataFrame, blocked: DataFrame) -> DataFrame:
    """``keys`` (``id_type, id_key``...) minus the ``blocked`` nodes."""
    return keys.join(F.broadcast(blocked), node_col() == F.col("node"), "left_anti")


def _person_records(lake: Lake) -> DataFrame | None:
    """``source, record_id`` of the person records (CRM, legacy) in their latest version."""
    people = _table(lake, "silver", "customer_records")
    return people.select("source", "record_id") if people is not None else None


def _history_named(ids: DataFrame, history: DataFrame, lake: Lake, cfg: CdpConfig) -> tuple[DataFrame, DataFrame]:
    """``(n, source, record_id)`` of person records an earlier version of which carried a subject's
    identifier, and the ``node`` of each subject identifier shared across those versions.

    Only identifiers no person record carries now are looked up: one a person record holds now is
    resolved by the graph, and an older holder of it (a recycled phone number) is not the subject.
    The graph's own caps (:func:`cdp_spark.identity.graph.blocklist`: customer accounts per type,
    ``junk_max_records``) judge whether the versions' carriers share it: one person's CRM and
    legacy records are one account; forty shop accounts that once held the store's address share it.
    """
    idents, people = _table(lake, "silver", "identifiers"), _person_records(lake)
    free = ids
    if idents is not None and people is not None:
        held_now = idents.join(F.broadcast(ids.select("id_type", "id_key").distinct()), ["id_type", "id_key"]).join(people, ["source", "record_id"], "left_semi")
        free = ids.join(held_now.select("id_type", "id_key").distinct(), ["id_type", "id_key"], "left_anti")
    versions = history.select("source", "record_id", "id_type", "id_key").distinct()
    carriers = versions.join(F.broadcast(free), ["id_type", "id_key"]).select("n", "id_type", "id_key", "source", "record_id").distinct().localCheckpoint()
    rows = versions.join(F.broadcast(carriers.select("source", "record_id").distinct()), ["source", "record_id"], "left_semi")
    shared = blocklist(rows.withColumn("anonymous", F.lit(False)).withColumn("seen_at", F.lit(None).cast("timestamp")), cfg.identity)
    shared = shared.join(F.broadcast(free.select(node_col().alias("node"))), "node", "left_semi").select("node").localCheckpoint()
    named = carriers.join(F.broadcast(shared), node_col() == F.col("node"), "left_anti").select("n", "source", "record_id")
    return named, shared


def _with_merged(uids: DataFrame, lake: Lake, *, max_hops: int) -> DataFrame:
    """``uids`` (``n, customer_uid``) plus every uid merged into one of them and every uid one of them
    was merged into (``gold.customer_id_registry.merged_into``, followed both ways): rows an earlier
    run wrote under a customer's pre-merge uid (score and segment history, export state) are theirs too.

    A merge into a customer that was later split (a registry row names it in ``split_from``) is not
    followed: the registry does not say which part the merged uid's person went to, and following
    it could erase the other part's person. Such uids are logged.
    """
    registry = _table(lake, "gold", "customer_id_registry")
    if registry is None or not {"merged_into", "split_from"} <= set(registry.columns):
        return uids.distinct().localCheckpoint()
    split = registry.where(F.col("split_from").isNotNull()).select(F.col("split_from").alias("merged_into")).distinct()
    merges = registry.where(F.col("merged_into").isNotNull()).select("customer_uid", "merged_into")
    merged = merges.join(split, "merged_into", "left_anti").localCheckpoint()
    found = uids.distinct().localCheckpoint()
    size = found.count()
    for hop in range(1, max_hops + 1):
        forward = found.join(merged, "customer_uid").select("n", F.col("merged_into").alias("customer_uid"))
        backward = found.join(merged.withColumnRenamed("customer_uid", "_from"), F.col("customer_uid") == F.col("merged_into")).select(
            "n", F.col("_from").alias("customer_uid")
        )
        grown = found.unionByName(forward).unionByName(backward).distinct().localCheckpoint()
        grown_size = grown.count()
        log.info("erasure: merge hop %d: %d customer uid(s)", hop, grown_size)
        if grown_size == size:
            unclear = merges.join(split, "merged_into", "left_semi").join(grown.select(F.col("customer_uid").alias("merged_into")), "merged_into", "left_semi").count()
            if unclear:
                log.warning("erasure: %d uid(s) merged into a customer that was later split are not followed: which part they belong to is unknown", unclear)
            return grown
        found, size = grown, grown_size
    raise CdpError(f"erasure: gold.customer_id_registry has merge chains longer than {max_hops} hops; check the registry for cycles")


def _resolve(subj: DataFrame, lake: Lake, blocked: DataFrame, history_named: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """``(n, customer_uid)`` and ``(n, source, record_id)`` linked to each subject.

    A person record that carried the subject's identifier in an earlier version (``history_named``,
    from :func:`_history_named`) counts as the subject's record, as if it had been named: it and the
    customer it resolved to are erased. Blocked identifiers (:func:`_blocked_nodes`) are never followed.
    """
    nodes, imap, idents = _table(lake, "gold", "identity_nodes"), _table(lake, "gold", "identity_map"), _table(lake, "silver", "identifiers")
    ids = _unblocked(subj.where(F.col("kind") == IDENTIFIER).select("n", "id_type", "id_key"), blocked).localCheckpoint()
    recs = subj.where(F.col("kind") == RECORD).select("n", "source", "record_id")
    if history_named is not None:
        recs = recs.unionByName(history_named)
    uid_links = [subj.where(F.col("kind") == CUSTOMER).select("n", "customer_uid")]
    if nodes is not None:
        uid_links.append(ids.join(nodes.select("node", "customer_uid"), node_col() == F.col("node")).select("n", "customer_uid"))
    if imap is not None:
        uid_links.append(recs.join(imap.select("source", "record_id", "customer_uid"), ["source", "record_id"]).select("n", "customer_uid"))
    uids = _with_merged(_union(uid_links), lake, max_hops=MAX_MERGE_HOPS)
    rec_links = [recs]
    if imap is not None:
        rec_links.append(uids.join(imap.select("customer_uid", "source", "record_id"), "customer_uid").select("n", "source", "record_id"))
    if idents is not None:
        rec_links.append(ids.join(idents.select("id_type", "id_key", "source", "record_id"), ["id_type", "id_key"]).select("n", "source", "record_id"))
    return uids, _union(rec_links).distinct().localCheckpoint()


def _current_keys(subj: DataFrame, records: DataFrame, lake: Lake, blocked: DataFrame) -> DataFrame:
    """``n, id_type, id_key``: the subjects' identifiers and those their records carry now, minus blocked ones."""
    keys = [subj.where(F.col("kind") == IDENTIFIER).select("n", "id_type", "id_key")]
    idents = _table(lake, "silver", "identifiers")
    if idents is not None:
        keys.append(idents.join(records, ["source", "record_id"]).select("n", "id_type", "id_key"))
    return _unblocked(_union(keys).distinct(), blocked).localCheckpoint()


def _former_keys(records: DataFrame, current: DataFrame, lake: Lake, history: DataFrame | None, blocked: DataFrame) -> DataFrame | None:
    """``n, id_type, id_key``: identifiers that only earlier versions of the records carried (an old
    address, a corrected typo), minus blocked ones and minus any that a **person record** outside
    ``records`` carries now: a recycled phone number belongs to its new holder, whose rows must not
    be erased or kept out at intake. Events and consents carrying one (a reply to the old address)
    are the subject's: the caller follows these keys like the current ones."""
    if history is None:
        return None
    former = _unblocked(history.join(records, ["source", "record_id"]).select("n", "id_type", "id_key").distinct(), blocked)
    former = former.join(current.select("id_type", "id_key"), ["id_type", "id_key"], "left_anti").localCheckpoint()
    idents, people = _table(lake, "silver", "identifiers"), _person_records(lake)
    if idents is not None and people is not None:
        carriers = idents.join(F.broadcast(former.select("id_type", "id_key").distinct()), ["id_type", "id_key"]).join(
            people, ["source", "record_id"], "left_semi"
        )
        held = carriers.join(records.select("source", "record_id"), ["source", "record_id"], "left_anti").select("id_type", "id_key")
        former = former.join(held, ["id_type", "id_key"], "left_anti")
    return former.localCheckpoint()


def _with_unresolved(records: DataFrame, keys: DataFrame, lake: Lake) -> DataFrame:
    """Add the records that carry one of ``keys`` but were not resolved to the customer (one hop)."""
    idents = _table(lake, "silver", "identifiers")
    if idents is None:
        return records.distinct().localCheckpoint()
    carrying = idents.join(keys, ["id_type", "id_key"]).select("n", "source", "record_id")
    return records.unionByName(carrying).distinct().localCheckpoint()


def _blocked_subjects(subj: DataFrame, blocked: DataFrame) -> list[int]:
    """Positions (1-based) of identifier subjects that are blocked: shared or junk, they name no one."""
    named = subj.where(F.col("kind") == IDENTIFIER).join(F.broadcast(blocked), node_col() == F.col("node"), "left_semi")
    return sorted(int(r["n"]) + 1 for r in named.select("n").collect())


def _rejected_records(lake: Lake) -> DataFrame | None:
    """``source, record_id`` of rows the quality gate rejected (``silver.quality_rejects``, keys as JSON)."""
    rejects = _table(lake, *REJECTS_TABLE)
    if rejects is None or "record_key" not in rejects.columns:
        return None
    keys = [F.get_json_object("record_key", f"$.{c}").alias(c) for c in ("source", "record_id")]
    return rejects.select(*keys).where(F.col("source").isNotNull() & F.col("record_id").isNotNull()).distinct().localCheckpoint()


def _unkeyed_rows(lake: Lake, name: str, processed: dict[str, int], rejected: DataFrame | None) -> DataFrame | None:
    """The rows of ``bronze.<name>`` that silver has not turned into keyed records: those added since its
    last committed batch (all of them when silver has not read the table), and those its quality gate
    rejected. Silver keys every other row it reads (``silver.identifiers``), so resolution reaches it."""
    bronze = lake.read("bronze", name)
    since = processed.get(name)
    if since is None:
        return bronze
    parts = []
    version = lake.version("bronze", name)
    if version != since:
        try:
            parts.append(lake.read_added("bronze", name, since_version=since, version=version))
        except StorageError as err:  # the log entries of silver's last batch were cleaned up
            log.warning("erasure: %s; sweeping all of bronze.%s", err, name)
            return bronze
    if rejected is not None:
        mine = rejected.where(F.col("source") == name).select(F.col("record_id").alias("_record_key"))
        parts.append(bronze.join(F.broadcast(mine), "_record_key", "left_semi"))
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts) if parts else None


def _swept_records(
    cfg: CdpConfig, lake: Lake, tables: Sequence[str], suppression: DataFrame, blocked: DataFrame, key: bytes
) -> tuple[DataFrame | None, DataFrame | None]:
    """``(source, record_id)`` of bronze records silver has not keyed that carry an erased identifier key,
    found as intake finds them (:func:`suppress_source_rows`), and ``(id_type, id_key)`` of the further
    identifiers those records carry (one hop, as for resolved records).

    Resolution reaches the rows silver turned into keyed records. This reaches the ones it did not
    (:func:`_unkeyed_rows`): rows ingested since silver's last batch (which the next batch would
    otherwise bring back into silver) and rows the quality gate rejected. Swept rows of records silver
    keys (an old version of someone else's record that carried a number when it was theirs) stay.
    """
    sources = {s.name: s for s in cfg.sources}
    processed, rejected = processed_versions(lake), _rejected_records(lake)
    idents = _table(lake, "silver", "identifiers")
    candidates = {}
    for name in tables:
        if name not in sources:
            log.warning("erasure: bronze.%s has no source in the config; its rows are erased by record only", name)
        elif (rows := _unkeyed_rows(lake, name, processed, rejected)) is not None:
            candidates[name] = rows

    def sweep(listed: DataFrame) -> list[tuple[str, DataFrame]]:
        """Per source, the candidate rows carrying a listed key, of records silver has not keyed."""
        found = []
        for name, rows in candidates.items():
            split = suppress_source_rows(rows, sources[name], key=key, suppressed=listed, gmail_rule=cfg.silver.gmail_normalization)
            if split is None:
                continue
            hits = split[1]
            if idents is not None:
                hits = hits.join(idents.where(F.col("source") == name).select(F.col("record_id").alias("_record_key")), "_record_key", "left_anti")
            found.append((name, hits.localCheckpoint()))
        return found

    def records_of(found: list[tuple[str, DataFrame]]) -> DataFrame:
        return _union([hits.select(F.lit(name).alias("source"), F.col("_record_key").alias("record_id")) for name, hits in found]).distinct()

    first = sweep(suppression)
    if not first:
        return None, None
    records = records_of(first)
    keys = _union([source_identifier_keys(hits, sources[name], key=key, gmail_rule=cfg.silver.gmail_normalization).select("id_type", "id_key") for name, hits in first])
    extra = _unblocked(keys.distinct(), blocked).join(suppression.select("id_type", "id_key"), ["id_type", "id_key"], "left_anti").localCheckpoint()
    if extra.take(1) and (more := sweep(extra)):
        records = records.unionByName(records_of(more))
    return records.distinct().localCheckpoint(), extra


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

    # Lazy, scanned by the steps below: re-reading the versions is cheaper than materializing their keys.
    history = _history_identifiers(lake, key)
    blocked = _blocked_nodes(spark, cfg, lake, key)
    history_named = None
    if history is not None:
        ids = _unblocked(subj.where(F.col("kind") == IDENTIFIER).select("n", "id_type", "id_key"), blocked)
        history_named, shared = _history_named(ids, history, lake, cfg)
        blocked = blocked.unionByName(shared).distinct().localCheckpoint()
    if named_no_one := _blocked_subjects(subj, blocked):
        log.warning(
            "erasure %s: subject(s) #%s name a shared or junk identifier (gold.identity_blocklist, identity.junk_values, or shared "
            "across earlier record versions beyond identity.per_type_caps); it identifies no single person, so nothing is erased "
            "or suppressed through it", run_id, ", #".join(map(str, named_no_one)),
        )
    subject_uids, subject_records = _resolve(subj, lake, blocked, history_named)
    current = _current_keys(subj, subject_records, lake, blocked)
    former = _former_keys(subject_records, current, lake, history, blocked)
    id_keys = current if former is None else current.unionByName(former).distinct().localCheckpoint()
    subject_records = _with_unresolved(subject_records, id_keys, lake)
    suppression = _suppression_rows(subj, id_keys, run_id=run_id, at=at)
    swept, swept_keys = _swept_records(cfg, lake, bronze_tables, suppression, blocked, key)
    if swept is not None:
        # the swept records are the subject's: records silver keys that carry their identifiers are too (one hop)
        subject_records = _with_unresolved(
            subject_records.unionByName(swept.select(F.lit(-1).alias("n"), "source", "record_id")), swept_keys.withColumn("n", F.lit(-1)), lake
        )
        suppression = suppression.unionByName(
            swept_keys.select(
                "id_type", "id_key", F.lit(None).cast("string").alias("subject_hash"), F.lit(run_id).alias("run_id"),
                F.lit(at).cast("timestamp").alias("suppressed_at"),
            )
        ).localCheckpoint()
    uids = key_set(subject_uids.select("customer_uid"), bound=bound)
    records = key_set(subject_records.select("source", "record_id"), bound=bound)
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
                    # silver.quality_rejects keys a rejected row as JSON text ({"source": ..., "record_id": ...})
                    preds.isin(["source", "record_id"], records, sql=[f"get_json_object(record_key, '$.{c}')" for c in ("source", "record_id")])
                    if (layer, name) == REJECTS_TABLE and "record_key" in cols else None,
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

    replay = pending_batch(lake)
    if replay is not None:
        log.warning(
            "erasure %s: silver batch %d did not finish; its replay reads the bronze versions it started from (and drops the erased "
            "rows), so bronze is not vacuumed now: run silver, then `cdp purge` vacuums it", run_id, replay,
        )
    vacuumed = {
        label: len(lake.vacuum(*label.split(".", 1), retention_hours=cfg.privacy.vacuum_retention_hours))
        for label, n in removed.items()
        if n and not (replay is not None and label.startswith("bronze."))
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
        blocked_subjects=tuple(named_no_one),
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
