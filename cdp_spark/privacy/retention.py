"""Storage limitation (GDPR Art. 5(1)(e)): purge anonymous identities past their TTL and events
past their country's retention, then vacuum so the files go too. Run it daily (see docs/privacy.md)."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig
from cdp_spark.lake import Lake
from cdp_spark.ops import lake_for
from cdp_spark.privacy._delete import KeySet, Predicates, any_of, delete_where, key_set
from cdp_spark.privacy._identifiers import ANONYMOUS_TYPES

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"  # bronze.quarantine: raw lines that could not be parsed

# silver event table -> its time column; both carry ISO alpha-2 ``country``
EVENT_TABLES = {"interactions": "event_ts", "orders": "order_ts"}


def _node() -> Column:
    return F.concat(F.col("id_type"), F.lit(":"), F.col("id_key"))


def expired_anonymous(identifiers: DataFrame, identity_map: DataFrame | None, identity_nodes: DataFrame | None, *, cutoff: datetime) -> DataFrame:
    """``source, record_id, customer_uid`` of records whose identity is anonymous and last seen before ``cutoff``.

    Resolved records: their customer's records all carry only anonymous identifiers (cookies,
    devices) and none was seen since ``cutoff``. Records identity left out (it drops expired
    anonymous components itself): only anonymous identifiers, each last seen before ``cutoff``
    anywhere, and none of them a node of a live customer.
    """
    per_record = identifiers.groupBy("source", "record_id").agg(
        F.min(F.col("id_type").isin(*ANONYMOUS_TYPES).cast("int")).alias("all_anon"), F.max("seen_at").alias("last_seen")
    )
    spark = identifiers.sparkSession
    if identity_map is None:
        identity_map = spark.createDataFrame([], "source string, record_id string, customer_uid string")
    if identity_nodes is None:
        identity_nodes = spark.createDataFrame([], "node string, customer_uid string")
    mapped = per_record.join(identity_map.select("source", "record_id", "customer_uid"), ["source", "record_id"])
    expired_uids = (
        mapped.groupBy("customer_uid")
        .agg(F.min("all_anon").alias("all_anon"), F.max("last_seen").alias("last_seen"))
        .where((F.col("all_anon") == 1) & (F.col("last_seen") < F.lit(cutoff)))
        .select("customer_uid")
    )
    resolved = identity_map.join(expired_uids, "customer_uid").select("source", "record_id", "customer_uid")
    live_nodes = identity_nodes.join(expired_uids, "customer_uid", "left_anti").select("node")
    node_last = identifiers.groupBy(_node().alias("node")).agg(F.max("seen_at").alias("node_last"))
    unmapped = (
        per_record.join(identity_map.select("source", "record_id"), ["source", "record_id"], "left_anti")
        .where((F.col("all_anon") == 1) & (F.col("last_seen") < F.lit(cutoff)))
        .select("source", "record_id")
    )
    record_nodes = identifiers.join(unmapped, ["source", "record_id"]).select("source", "record_id", _node().alias("node"))
    blocked = (
        record_nodes.join(node_last, "node")
        .where(F.col("node_last") >= F.lit(cutoff))
        .select("source", "record_id")
        .unionByName(record_nodes.join(live_nodes, "node").select("source", "record_id"))
    )
    orphans = unmapped.join(blocked, ["source", "record_id"], "left_anti").select("source", "record_id", F.lit(None).cast("string").alias("customer_uid"))
    return resolved.unionByName(orphans).select("source", "record_id", "customer_uid")


def _retention_cutoff(ts: str, country: str, cfg: CdpConfig, run_day: datetime) -> str:
    """``<ts> < <cutoff of the row's country>`` as Spark SQL (bounded by the number of countries configured)."""

    def literal(days: int) -> str:
        return f"TIMESTAMP'{(run_day - timedelta(days=days)).isoformat(sep=' ')}'"

    # Keys are validated ISO alpha-2 codes (PrivacyConfig), safe to inline.
    branches = " ".join(f"WHEN '{c}' THEN {literal(d)}" for c, d in sorted(cfg.privacy.retention_days_by_country.items()))
    default = literal(cfg.privacy.default_retention_days)
    cutoff = f"CASE upper({country}) {branches} ELSE {default} END" if branches else default
    return f"{ts} < {cutoff}"


def _delete_records(lake: Lake, preds: Predicates, records: KeySet, uids: KeySet | None, *, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Delete records (and customers) from bronze, silver and gold; rows removed per table."""
    removed: dict[str, int] = {}
    if records.size == 0 and (uids is None or uids.size == 0):
        return removed
    for name in lake.tables("bronze"):
        if "_record_key" in lake.read("bronze", name).columns:
            mine = records.restrict("source", name, keep=["record_id"])
            removed[f"bronze.{name}"] = delete_where(lake, "bronze", name, preds.isin(["_record_key"], mine))
    for layer in ("silver", "gold"):
        for name in lake.tables(layer):
            if f"{layer}.{name}" in skip:
                continue
            cols = set(lake.read(layer, name).columns)
            predicate = any_of(
                preds.isin(["customer_uid"], uids) if uids is not None and "customer_uid" in cols else None,
                preds.isin(["source", "record_id"], records) if {"source", "record_id"} <= cols else None,
            )
            removed[f"{layer}.{name}"] = delete_where(lake, layer, name, predicate)
    return removed


def purge_expired(spark: SparkSession, cfg: CdpConfig, *, run_date: date, run_id: str) -> dict:
    """Delete expired anonymous identities and events past their country's retention; vacuum.

    1. Anonymous identities (customers made only of cookie/device ids, and such records identity
       left unresolved) not seen for ``identity.anonymous_ttl_days``: from bronze, silver and gold.
    2. Events (``silver.interactions``, ``silver.orders`` and their identifier/contact rows,
       ``gold.identity_map`` rows, and the bronze rows with the same source record key) older than
       ``privacy.retention_days_by_country[country]`` or ``privacy.default_retention_days``.
    3. Raw lines in ``bronze.quarantine`` ingested more than ``privacy.quarantine_retention_days`` ago.
    4. Vacuum every bronze, silver and gold table with ``privacy.vacuum_retention_hours``, so
       files replaced by earlier erasures and purges are deleted once older than the retention
       (bronze not while a silver batch is unfinished: its replay reads older bronze versions).

    Returns ``anonymous_customers``, ``anonymous_records``, ``expired_events``,
    ``rows_removed`` (``layer.table`` -> rows), ``files_vacuumed`` and ``seconds``.
    """
    started = time.monotonic()
    lake = lake_for(spark, cfg, run_id=run_id, stage="privacy")
    bound = cfg.privacy.erasure_in_list_max
    run_day = datetime.combine(run_date, datetime.min.time())
    out: dict = {"anonymous_customers": 0, "anonymous_records": 0, "expired_events": 0, "rows_removed": {}, "files_vacuumed": {}}

    def merge(removed: dict[str, int]) -> None:
        for label, n in removed.items():
            if n:
                out["rows_removed"][label] = out["rows_removed"].get(label, 0) + n

    preds = Predicates(spark)
    with preds.scope():
        if lake.exists("silver", "identifiers"):
            anon = expired_anonymous(
                lake.read("silver", "identifiers"),
                lake.read("gold", "identity_map") if lake.exists("gold", "identity_map") else None,
                lake.read("gold", "identity_nodes") if lake.exists("gold", "identity_nodes") else None,
                cutoff=run_day - timedelta(days=cfg.identity.anonymous_ttl_days),
            ).localCheckpoint()
            records = key_set(anon.select("source", "record_id"), bound=bound)
            uids = key_set(anon.select("customer_uid"), bound=bound)
            out["anonymous_records"], out["anonymous_customers"] = records.size, uids.size
            merge(_delete_records(lake, preds, records, uids))

        expired = [
            lake.read("silver", name).where(_retention_cutoff(ts, "country", cfg, run_day)).select("source", "record_id")
            for name, ts in EVENT_TABLES.items()
            if lake.exists("silver", name)
        ]
        if expired:
            events = key_set(reduce(DataFrame.unionByName, expired), bound=bound)
            out["expired_events"] = events.size
            # consents are kept: they are the proof of consent, with their own legal basis
            merge(_delete_records(lake, preds, events, None, skip=("silver.consents",)))

        if lake.exists("bronze", QUARANTINE):
            quarantined = lake.read("bronze", QUARANTINE)
            if "ingested_at" in quarantined.columns:
                cutoff = run_day - timedelta(days=cfg.privacy.quarantine_retention_days)
                merge({f"bronze.{QUARANTINE}": delete_where(lake, "bronze", QUARANTINE, f"ingested_at < TIMESTAMP'{cutoff.isoformat(sep=' ')}'")})
            else:
                log.warning("purge: bronze.%s has no ingested_at column; its raw lines are not purged by age", QUARANTINE)

    from cdp_spark.pipeline.silver import pending_batch

    replay = pending_batch(lake)
    if replay is not None:
        log.warning("purge %s: silver batch %d did not finish and its replay reads older bronze versions: bronze is not vacuumed until silver has run", run_id, replay)
    for layer in ("bronze", "silver", "gold"):
        if layer == "bronze" and replay is not None:
            continue
        for name in lake.tables(layer):
            files = lake.vacuum(layer, name, retention_hours=cfg.privacy.vacuum_retention_hours)
            if files:
                out["files_vacuumed"][f"{layer}.{name}"] = len(files)
    out["seconds"] = round(time.monotonic() - started, 3)
    log.info("purge %s: %s", run_id, {k: v for k, v in out.items() if k != "files_vacuumed"})
    return out
