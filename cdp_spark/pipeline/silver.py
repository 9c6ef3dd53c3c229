"""Silver: standardized, validated, deduplicated and pseudonymized tables built from bronze.

Tables (schemas in ``docs/silver.md``):

* ``silver.customer_records``  one row per customer/person source record (latest CRM version)
* ``silver.customer_record_history`` every CRM version seen
* ``silver.identifiers``       one row per record x identifier type, keyed by an HMAC of the value
* ``silver.interactions``      web, app, marketing and support events
* ``silver.orders``            e-commerce orders and POS transactions, in original and reporting currency
* ``silver.consents``          consent history per subject and purpose with valid_from/valid_to
* ``silver.fx_rates``          dated FX rates
* ``silver.pii_contacts``      RESTRICTED: normalized raw emails and phones (for activation hashing and erasure)

Every table is validated by its quality suite before anything is written; a failed critical
expectation leaves all of silver at its previous version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cdp_spark.config import IDENTIFIER_TYPES, CdpConfig, SourceConfig
from cdp_spark.faults import fault_point
from cdp_spark.lake import Lake
from cdp_spark.ops import lake_for

log = logging.getLogger(__name__)

ANONYMOUS_TYPES = ("cookie_id", "device_id")
RECORD_ID_TYPE = "record"  # the identifier of a record that carries no other
# identifier type -> source column holding it (after the source's column mapping)
IDENTIFIER_COLUMNS = IDENTIFIER_TYPES
# identifier type -> standardized column of a silver row holding its value (what identifier_rows keys)
IDENTIFIER_VALUE_COLUMNS = {
    "customer_id": "customer_id",
    "email": "email_norm",
    "phone": "phone_e164",
    "loyalty_id": "loyalty_id",
    "device_id": "device_id",
    "cookie_id": "cookie_id",
    "legacy_id": "legacy_id",
    "national_id": "national_id",
}
EVENT_KINDS = ("web_event", "app_event", "marketing", "support")
ORDER_KINDS = ("order", "pos")
PERSON_KINDS = ("customer", "person")
_BRONZE_META = "_"  # bronze metadata columns start with an underscore
HISTORY_KEY = ("source", "record_id", "updated_at")
EVENT_INDEX = "event_index"  # silver.event_index: every event record seen, for incremental de-duplication
EVENT_INDEX_COLUMNS = ("source", "record_id", "content_hash")
PII_CONTACT_COLUMNS = ("source", "record_id", "country", "email_norm", "email_address", "phone_e164")  # silver.pii_contacts (RESTRICTED)
CUSTOMER_RECORD_COLUMNS = (
    "source", "record_id", "country", "first_name", "last_name", "name_key", "date_of_birth", "gender", "city", "postcode",
    "email_reason", "phone_reason", "updated_at", "ingested_at",
)  # fmt: skip


@dataclass(frozen=True)
class SilverReport:
    rows_in: int
    rows_out: int
    tables: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)
    batch: int | None = None  # ops.silver_batches.batch (None: silver was already up to date)
    mode: str = "up to date"  # "full", "incremental" or "up to date"

    def as_dict(self) -> dict:
        return {"tables": self.tables, "duplicates_dropped": self.duplicates_dropped, "quality": self.quality, "batch": self.batch, "mode": self.mode}


# --------------------------------------------------------------------------- small column helpers


def _col_or_null(df: DataFrame, name: str, dtype: str = "string") -> Column:
    return F.col(name).cast(dtype) if name in df.columns else F.lit(None).cast(dtype)


def _parse_date(col: Column) -> Column:
    """Dates of birth arrive as ISO, European and US forms; the first pattern that parses wins."""
    patterns = ("yyyy-MM-dd", "dd.MM.yyyy", "dd/MM/yyyy", "yyyy/MM/dd", "yyyyMMdd", "MM/dd/yyyy")
    text = F.trim(col.cast("string"))
    return F.coalesce(*[F.try_to_date(text, p) for p in patterns])


def canonical(src: SourceConfig) -> Callable[[DataFrame], DataFrame]:
    """Rename source fields to canonical names and add ``source``, ``record_id``, ``country_raw``."""

    def apply(df: DataFrame) -> DataFrame:
        for source_name, canonical_name in src.columns.items():
            if source_name in df.columns and canonical_name not in df.columns:
                df = df.withColumnRenamed(source_name, canonical_name)
        country = F.col("_country") if "_country" in df.columns else _col_or_null(df, "country")
        return (
            df.withColumn("source", F.lit(src.name))
            .withColumn("record_id", F.col("_record_key").cast("string"))
            .withColumn("country_raw", country.cast("string"))
        )

    return apply


def event_time(src: SourceConfig, df: DataFrame, country_col: Column) -> Column:
    """The source's event time in UTC (naive local times use the source or the country's zone)."""
    from cdp_spark.standardize import country_timezone, to_utc

    if not src.event_time_column or src.event_time_column not in df.columns:
        return F.col("_ingested_at").cast("timestamp") if "_ingested_at" in df.columns else F.lit(None).cast("timestamp")
    raw = F.col(src.event_time_column).cast("string")
    if src.timestamp_format:
        raw = F.date_format(F.try_to_timestamp(raw, F.lit(src.timestamp_format)), "yyyy-MM-dd'T'HH:mm:ss")
    if src.timezone == "country":
        return to_utc(raw, tz_col=country_timezone(country_col))
    return to_utc(raw, source_tz=src.timezone)


def dedupe(df: DataFrame, *, key: list[str], order: list[Column]) -> DataFrame:
    """Keep the first row per key by ``order`` (a delivered-twice event is kept once)."""
    w = Window.partitionBy(*key).orderBy(*order)
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def content_hash(df: DataFrame, exclude: tuple[str, ...]) -> Column:
    cols = sorted(c for c in df.columns if not c.startswith(_BRONZE_META) and c not in exclude)
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in cols])), 256)


def _first_arrival() -> list[Column]:
    return [F.col("_ingested_at").asc_nulls_last(), F.col("_file_path").asc_nulls_last(), F.col("_line").asc_nulls_last()]


def _ensure_meta(df: DataFrame) -> DataFrame:
    for name, dtype in (("_ingested_at", "timestamp"), ("_file_path", "string"), ("_line", "long")):
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast(dtype))
    return df


# --------------------------------------------------------------------------- per-table transforms


def standardized_contacts(gmail_rule: bool) -> Callable[[DataFrame], DataFrame]:
    """Adds ``country``, ``email_norm``/``email_reason``, ``email_address``, ``phone_e164``/``phone_reason``.

    ``email_norm`` is the identity form (with ``gmail_rule``, Gmail's dots and ``+tags`` dropped: one
    mailbox, one key); ``email_address`` is the same validated address as the person gave it (lower
    case, NFKC, trimmed, nothing dropped), which ad platforms other than Google hash as it is.
    """
    from cdp_spark.standardize import country_code, standardize_email, standardize_phone

    def apply(df: DataFrame) -> DataFrame:
        df = df.withColumn("country", country_code(F.col("country_raw")))
        email = standardize_email(_col_or_null(df, "email"), gmail_rule=gmail_rule)
        phone = standardize_phone(_col_or_null(df, "phone"), F.col("country"))
        return (
            df.withColumn("_email", email)
            .withColumn("_phone", phone)
            .withColumn("email_norm", F.col("_email.value"))
            .withColumn("email_reason", F.col("_email.reason"))
            .withColumn("email_address", F.when(F.col("_email.value").isNotNull(), standardize_email(_col_or_null(df, "email"), gmail_rule=False).getField("value")))
            .withColumn("phone_e164", F.col("_phone.value"))
            .withColumn("phone_reason", F.col("_phone.reason"))
            .drop("_email", "_phone")
        )

    return apply


def person_records(src: SourceConfig, df: DataFrame, *, gmail_rule: bool) -> DataFrame:
    """Customer/person source → standardized person rows (every version; ``updated_at`` UTC)."""
    from cdp_spark.standardize import name_clean, name_key

    df = _ensure_meta(df.transform(canonical(src)).transform(standardized_contacts(gmail_rule)))
    updated = event_time(src, df, F.col("country"))
    return df.select(
        "source",
        "record_id",
        "country",
        name_clean(_col_or_null(df, "first_name"), F.col("country")).alias("first_name"),
        name_clean(_col_or_null(df, "last_name"), F.col("country")).alias("last_name"),
        F.concat_ws(" ", name_key(_col_or_null(df, "first_name")), name_key(_col_or_null(df, "last_name"))).alias("name_key"),
        _parse_date(_col_or_null(df, "date_of_birth")).alias("date_of_birth"),
        F.lower(F.trim(_col_or_null(df, "gender"))).alias("gender"),
        F.trim(_col_or_null(df, "city")).alias("city"),
        F.upper(F.trim(_col_or_null(df, "postcode"))).alias("postcode"),
        "email_norm",
        "email_reason",
        "email_address",
        "phone_e164",
        "phone_reason",
        F.trim(_col_or_null(df, "customer_id")).alias("customer_id"),
        F.upper(F.trim(_col_or_null(df, "loyalty_id"))).alias("loyalty_id"),
        F.trim(_col_or_null(df, "legacy_id")).alias("legacy_id"),
        F.when(
            F.length(F.regexp_replace(_col_or_null(df, "national_id"), "[^0-9A-Za-z]", "")) > 0,
            F.concat_ws(":", F.col("country"), F.upper(F.regexp_replace(_col_or_null(df, "national_id"), "[^0-9A-Za-z]", ""))),
        ).alias("national_id"),
        updated.alias("updated_at"),
        F.col("_ingested_at").alias("ingested_at"),
        F.col("_file_path"),
        F.col("_line"),
    )


def _latest_order() -> list[Column]:
    return [F.col("updated_at").desc_nulls_last(), F.col("ingested_at").desc_nulls_last(), F.col("_file_path").desc_nulls_last(), F.col("_line").desc_nulls_last()]


def latest_versions(history: DataFrame) -> DataFrame:
    """CRM record versions collapse to the latest per (source, record_id)."""
    return dedupe(history, key=["source", "record_id"], order=_latest_order())


def history_versions(people: DataFrame) -> DataFrame:
    """Every version of every record, once: a version (same ``updated_at``) delivered again keeps its latest delivery."""
    return dedupe(people, key=list(HISTORY_KEY), order=_latest_order())


def with_content_hash(events: DataFrame) -> DataFrame:
    """``content_hash``: SHA-256 of everything but the record id and the delivery metadata.

    Two events with the same content under different ids are one event delivered twice.
    """
    content = [c for c in events.columns if c not in ("record_id", "_ingested_at", "_file_path", "_line")]
    return events.withColumn("content_hash", F.sha2(F.to_json(F.struct(*[F.col(c) for c in content])), 256))


def identifier_rows(df: DataFrame, *, key: bytes, ts_col: str = "event_ts") -> DataFrame:
    """One row per record x identifier: (source, record_id, id_type, id_key, anonymous, country, seen_at).

    ``df`` carries standardized identifier columns (``email_norm``, ``phone_e164``, ``customer_id``, ...).
    """
    from cdp_spark.privacy.pseudonymize import keyed_hash

    present = [(t, c) for t, c in IDENTIFIER_VALUE_COLUMNS.items() if c in df.columns]
    if not present:
        raise ValueError("no identifier columns present")
    pairs = F.array(*[F.struct(F.lit(t).alias("id_type"), F.col(c).cast("string").alias("value")) for t, c in present])
    usable = F.filter(pairs, lambda p: p["value"].isNotNull() & (F.trim(p["value"]) != ""))
    # A record left with no identifier (e.g. only a junk e-mail that failed standardization) still
    # gets one, of its own: every record reaches the identity map, as an anonymous singleton.
    own = F.array(F.struct(F.lit(RECORD_ID_TYPE).alias("id_type"), F.concat_ws(":", "source", "record_id").alias("value")))
    exploded = df.select(
        "source", "record_id", "country", F.col(ts_col).alias("seen_at"), F.explode(F.when(F.size(usable) > 0, usable).otherwise(own)).alias("p")
    )
    return exploded.select(
        "source",
        "record_id",
        F.col("p.id_type").alias("id_type"),
        keyed_hash(F.concat(F.col("p.id_type"), F.lit(":"), F.col("p.value")), key).alias("id_key"),
        F.col("p.id_type").isin(*ANONYMOUS_TYPES, RECORD_ID_TYPE).alias("anonymous"),
        "country",
        "seen_at",
    )


def event_rows(src: SourceConfig, df: DataFrame, *, gmail_rule: bool) -> DataFrame:
    """Event/order sources → standardized rows with ``event_ts`` (UTC), identifiers and attributes."""
    df = _ensure_meta(df.transform(canonical(src)).transform(standardized_contacts(gmail_rule)))
    ts = event_time(src, df, F.col("country"))
    return df.select(
        "source",
        "record_id",
        "country",
        ts.alias("event_ts"),
        F.lit(src.kind).alias("kind"),
        F.lower(F.trim(_col_or_null(df, "event_type"))).alias("event_type"),
        F.trim(_col_or_null(df, "customer_id")).alias("customer_id"),
        "email_norm",
        "email_reason",
        "email_address",
        "phone_e164",
        "phone_reason",
        F.lower(F.trim(_col_or_null(df, "device_id"))).alias("device_id"),
        F.lower(F.trim(_col_or_null(df, "cookie_id"))).alias("cookie_id"),
        F.upper(F.trim(_col_or_null(df, "loyalty_id"))).alias("loyalty_id"),
        F.upper(F.trim(_col_or_null(df, "currency"))).alias("currency"),
        _col_or_null(df, "amount").try_cast("double").alias("amount"),
        _col_or_null(df, "items").try_cast("int").alias("items"),
        F.lower(_col_or_null(df, "status")).alias("status"),
        _col_or_null(df, "campaign_id").alias("campaign_id"),
        _col_or_null(df, "url").alias("url"),
        _col_or_null(df, "platform").alias("platform"),
        _col_or_null(df, "channel").alias("channel"),
        _col_or_null(df, "topic").alias("topic"),
        _col_or_null(df, "store_id").alias("store_id"),
        _col_or_null(df, "purpose").alias("purpose"),
        F.lower(_col_or_null(df, "status")).alias("consent_status"),
        F.col("_ingested_at"),
        F.col("_file_path"),
        F.col("_line"),
    )


def interactions_table(events: DataFrame) -> DataFrame:
    channel = (
        F.when(F.col("kind") == "web_event", F.lit("web"))
        .when(F.col("kind") == "app_event", F.lit("app"))
        .when(F.col("kind") == "marketing", F.lit("email"))
        .otherwise(F.coalesce(F.col("channel"), F.lit("support")))
    )
    return events.select(
        "source",
        "record_id",
        "country",
        "event_ts",
        F.col("kind"),
        F.coalesce(F.col("event_type"), F.col("kind")).alias("event_type"),
        channel.alias("channel"),
        "campaign_id",
        "url",
        "platform",
        "topic",
    )


def order_rows(orders: DataFrame) -> DataFrame:
    """Order and POS events → order rows in their original currency."""
    return orders.select(
        "source",
        "record_id",
        "country",
        F.col("event_ts").alias("order_ts"),
        F.to_date("event_ts").alias("order_date"),
        F.when(F.col("kind") == "pos", F.lit("store")).otherwise(F.lit("ecommerce")).alias("channel"),
        "store_id",
        F.coalesce(F.col("status"), F.lit("completed")).alias("status"),
        "items",
        "currency",
        "amount",
    )


def convert_orders(base: DataFrame, fx: DataFrame, reporting_currency: str) -> DataFrame:
    """Adds ``amount_reporting`` (dated FX rate) and ``reporting_currency`` to order rows."""
    from cdp_spark.standardize import convert_currency

    converted = convert_currency(
        base, fx, amount_col="amount", currency_col="currency", date_col="order_date", reporting_currency=reporting_currency, out_col="amount_reporting"
    )
    return converted.select(*base.columns, "amount_reporting", F.lit(reporting_currency).alias("reporting_currency"))


def orders_table(orders: DataFrame, fx: DataFrame, reporting_currency: str) -> DataFrame:
    return convert_orders(order_rows(orders), fx, reporting_currency)


def consent_rows(consents: DataFrame, *, key: bytes) -> DataFrame:
    """Consent events → one row per event: subject (keyed), purpose, ``granted``, ``valid_from``."""
    from cdp_spark.privacy.pseudonymize import keyed_hash

    subject_type = F.when(F.col("customer_id").isNotNull(), F.lit("customer_id")).otherwise(F.lit("email"))
    subject_value = F.coalesce(F.col("customer_id"), F.col("email_norm"))
    return consents.where(subject_value.isNotNull() & F.col("purpose").isNotNull()).select(
        "source",
        "record_id",
        "country",
        subject_type.alias("subject_type"),
        keyed_hash(F.concat(subject_type, F.lit(":"), subject_value), key).alias("subject_key"),
        F.lower(F.trim("purpose")).alias("purpose"),
        (F.col("consent_status") == "granted").alias("granted"),
        F.col("event_ts").alias("valid_from"),
    )


def consent_history(rows: DataFrame) -> DataFrame:
    """``valid_to`` (the next event's ``valid_from`` for the same subject and purpose) and ``is_current``."""
    w = Window.partitionBy("subject_key", "purpose").orderBy("valid_from", "record_id")
    return rows.withColumn("valid_to", F.lead("valid_from").over(w)).withColumn("is_current", F.col("valid_to").isNull())


def consents_table(consents: DataFrame, *, key: bytes) -> DataFrame:
    """Consent events → history per subject and purpose with ``valid_from``/``valid_to``."""
    return consent_history(consent_rows(consents, key=key))


def fx_table(fx: DataFrame) -> DataFrame:
    return fx.select(
        F.to_date(F.col("date")).alias("date"),
        F.upper(F.trim("currency")).alias("currency"),
        F.col("rate_to_eur").try_cast("double").alias("rate_to_eur"),
    ).dropDuplicates(["date", "currency"])


# --------------------------------------------------------------------------- building the tables


def _union(frames: list[DataFrame]) -> DataFrame | None:
    out = None
    for f in frames:
        out = f if out is None else out.unionByName(f)
    return out


def _by_kind(cfg: CdpConfig, bronze: dict[str, DataFrame]) -> dict[str, list[tuple[SourceConfig, DataFrame]]]:
    by_kind: dict[str, list[tuple[SourceConfig, DataFrame]]] = {}
    for src in cfg.sources:
        if src.name in bronze:
            by_kind.setdefault(src.kind, []).append((src, bronze[src.name]))
    return by_kind


def _people(cfg: CdpConfig, by_kind: dict[str, list[tuple[SourceConfig, DataFrame]]]) -> DataFrame | None:
    gmail = cfg.silver.gmail_normalization
    return _union([person_records(s, df, gmail_rule=gmail) for k in PERSON_KINDS for s, df in by_kind.get(k, [])])


def _events(cfg: CdpConfig, by_kind: dict[str, list[tuple[SourceConfig, DataFrame]]]) -> DataFrame | None:
    gmail = cfg.silver.gmail_normalization
    frames = [event_rows(s, df, gmail_rule=gmail) for k in EVENT_KINDS + ORDER_KINDS + ("consent",) for s, df in by_kind.get(k, [])]
    events = _union(frames)
    return None if events is None else with_content_hash(events)


def _fx(spark: SparkSession, by_kind: dict[str, list[tuple[SourceConfig, DataFrame]]]) -> DataFrame:
    frames = [fx_table(df) for _, df in by_kind.get("fx", [])]
    return _union(frames) or spark.createDataFrame([], "date date, currency string, rate_to_eur double")


def _first_content(events: DataFrame) -> DataFrame:
    """One event per content: the first to arrive (then the lowest record id)."""
    return dedupe(events, key=["content_hash"], order=[*_first_arrival(), F.col("record_id")])


def _assemble(
    tables: dict[str, DataFrame], *, latest: DataFrame | None, by_id: DataFrame | None, events: DataFrame | None, key: bytes
) -> None:
    """The tables both builds derive the same way: customer records, identifiers, contacts, interactions."""
    id_frames = []
    contacts = []
    if latest is not None:
        id_frames.append(identifier_rows(latest.withColumn("event_ts", F.col("updated_at")), key=key))
        contacts.append(latest.select(*PII_CONTACT_COLUMNS))
        tables["customer_records"] = latest.select(*CUSTOMER_RECORD_COLUMNS)
    if by_id is not None and events is not None:
        # Every record keeps its identifiers (so every record gets a customer_uid), even an event
        # whose content duplicates another's under a different id and is dropped from interactions.
        id_frames.append(identifier_rows(by_id, key=key))
        contacts.append(
            events.where(F.col("email_norm").isNotNull() | F.col("phone_e164").isNotNull()).select(*PII_CONTACT_COLUMNS)
        )
        tables["interactions"] = interactions_table(events.where(F.col("kind").isin(*EVENT_KINDS)))
    if contacts:
        tables["pii_contacts"] = _union(contacts)  # type: ignore[assignment]
    if id_frames:
        tables["identifiers"] = _union(id_frames)  # type: ignore[assignment]


@dataclass
class SilverBuild:
    """The tables to validate and write, the event index to record, and the counts for the report."""

    tables: dict[str, DataFrame]
    event_index: DataFrame | None
    dropped: dict[str, int]


def build_full(spark: SparkSession, cfg: CdpConfig, bronze: dict[str, DataFrame], *, key: bytes) -> SilverBuild:
    """Every silver table from whole bronze tables, plus the event index (which events were seen)."""
    by_kind = _by_kind(cfg, bronze)
    tables: dict[str, DataFrame] = {}
    dropped: dict[str, int] = {}
    fx = _fx(spark, by_kind)
    tables["fx_rates"] = fx

    latest = None
    people = _people(cfg, by_kind)
    if people is not None:
        people = people.cache()
        tables["customer_record_history"] = history_versions(people).drop("_file_path", "_line")
        latest = latest_versions(people).drop("_file_path", "_line")

    by_id = events = index = None
    events_all = _events(cfg, by_kind)
    if events_all is not None:
        before = events_all.count()
        by_id = dedupe(events_all, key=["source", "record_id"], order=_first_arrival()).cache()
        events = _first_content(by_id).cache()
        dropped["events"] = before - events.count()
        tables["orders"] = orders_table(events.where(F.col("kind").isin(*ORDER_KINDS)), fx, cfg.silver.reporting_currency)
        tables["consents"] = consents_table(events.where(F.col("kind") == "consent"), key=key)
        index = by_id.select(*EVENT_INDEX_COLUMNS)
    _assemble(tables, latest=latest, by_id=by_id, events=events, key=key)
    return SilverBuild(tables, index, dropped)


def build_increment(
    spark: SparkSession,
    cfg: CdpConfig,
    lake: Lake,
    added: dict[str, DataFrame],
    *,
    fx_all: DataFrame,
    fx_changed: bool,
    key: bytes,
) -> SilverBuild:
    """The changes to silver from bronze rows not seen before (``added``, per source), as rows to merge.

    Gives the same silver as :func:`build_full` over all of bronze when batches arrive in order:
    a CRM version competes with the record's versions already in history; an event whose record
    id or content was seen before (``silver.event_index``) is a re-delivery; a consent event
    recomputes ``valid_to`` of its subject and purpose; new FX rates convert again the orders
    dated on or after the earliest new rate.
    """
    by_kind = _by_kind(cfg, added)
    tables: dict[str, DataFrame] = {}
    dropped: dict[str, int] = {}
    if fx_changed:
        tables["fx_rates"] = fx_all

    latest = None
    people = _people(cfg, by_kind)
    if people is not None:
        people = people.cache()
        tables["customer_record_history"] = history_versions(people).drop("_file_path", "_line")
        touched = people.select("source", "record_id").distinct()
        known = (
            _table_or_empty(lake, "customer_record_history", people.drop("_file_path", "_line"))
            .join(touched, ["source", "record_id"], "left_semi")
            .withColumn("_file_path", F.lit(None).cast("string"))
            .withColumn("_line", F.lit(None).cast("long"))
        )
        latest = latest_versions(known.unionByName(people, allowMissingColumns=True).select(*people.columns)).drop("_file_path", "_line")

    by_id = events = index = None
    events_all = _events(cfg, by_kind)
    if events_all is not None:
        before = events_all.count()
        seen = _table_or_empty(lake, EVENT_INDEX, events_all.select(*EVENT_INDEX_COLUMNS))
        by_id = (
            dedupe(events_all, key=["source", "record_id"], order=_first_arrival())
            .join(seen.select("source", "record_id"), ["source", "record_id"], "left_anti")
            .cache()
        )
        events = _first_content(by_id.join(seen.select("content_hash").distinct(), "content_hash", "left_anti")).cache()
        dropped["events"] = before - events.count()
        new_orders = orders_table(events.where(F.col("kind").isin(*ORDER_KINDS)), fx_all, cfg.silver.reporting_currency)
        tables["orders"] = new_orders
        consents = consent_rows(events.where(F.col("kind") == "consent"), key=key)
        pairs = consents.select("subject_key", "purpose").distinct()
        earlier = (
            _table_or_empty(lake, "consents", consents)
            .join(pairs, ["subject_key", "purpose"], "left_semi")
            .join(consents.select("source", "record_id"), ["source", "record_id"], "left_anti")  # a replay after a crash
            .select(*consents.columns)
        )
        tables["consents"] = consent_history(earlier.unionByName(consents))
        index = by_id.select(*EVENT_INDEX_COLUMNS)
    if fx_changed and lake.exists("silver", "orders"):
        since = added_fx_dates(cfg, added).agg(F.min("date")).first()[0]
        if since is not None:
            again = lake.read("silver", "orders").where(F.col("order_date") >= F.lit(since))
            if "orders" in tables:
                again = again.join(tables["orders"].select("source", "record_id"), ["source", "record_id"], "left_anti")
            base_columns = [c for c in again.columns if c not in ("amount_reporting", "reporting_currency")]
            reconverted = convert_orders(again.select(*base_columns), fx_all, cfg.silver.reporting_currency)
            tables["orders"] = reconverted if "orders" not in tables else tables["orders"].unionByName(reconverted)
            log.info("silver: new FX rates from %s: orders dated since then are converted again", since)
    _assemble(tables, latest=latest, by_id=by_id, events=events, key=key)
    return SilverBuild(tables, index, dropped)


def _table_or_empty(lake: Lake, name: str, like: DataFrame) -> DataFrame:
    """``silver.<name>``, or no rows with ``like``'s columns when the table does not exist yet."""
    return lake.read("silver", name) if lake.exists("silver", name) else like.limit(0)


def added_fx_dates(cfg: CdpConfig, added: dict[str, DataFrame]) -> DataFrame:
    """(date, currency) of the FX rates among the added bronze rows."""
    frames = [fx_table(df).select("date", "currency") for _, df in _by_kind(cfg, added).get("fx", [])]
    return _union(frames).distinct()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- batches and the stage

TXN_APP = "cdp-silver"  # Delta application-transaction id of silver's writes; its version is the batch number
BATCHES = ("ops", "silver_batches")
BATCHES_SCHEMA = (
    "batch long, run_id string, mode string, status string, fingerprint string, since_versions string, "
    "bronze_versions string, rows_in long, started_at timestamp, committed_at timestamp"
)
# Bump when a change to this module changes silver's output for the same bronze: the next run rebuilds.
BUILD_VERSION = 3  # 3: silver.pii_contacts.email_address
# How each table takes an incremental batch: (operation, keys). Written in this order, the index last.
INCREMENT_WRITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fx_rates": ("overwrite", ()),
    "customer_record_history": ("upsert", HISTORY_KEY),
    "customer_records": ("upsert", ("source", "record_id")),
    "pii_contacts": ("upsert", ("source", "record_id")),
    "identifiers": ("replace", ("source", "record_id")),
    "interactions": ("append", ()),  # only events never seen before
    "orders": ("upsert", ("source", "record_id")),  # new orders, and older ones converted again after new FX rates
    "consents": ("upsert", ("source", "record_id")),
    EVENT_INDEX: ("append", ()),
}


@dataclass(frozen=True)
class BatchPlan:
    """What one silver run processes: bronze versions ``since`` (exclusive) up to ``versions`` (inclusive)."""

    batch: int
    mode: str  # "full" or "incremental"
    since: dict[str, int]
    versions: dict[str, int]
    fingerprint: str
    replay: bool = False  # the batch started before, crashed, and is finished now with the same versions
    reason: str = ""


def fingerprint(cfg: CdpConfig, key: bytes) -> str:
    """What silver's output depends on besides bronze: build version, silver settings, sources, the secret.

    A change in any of them makes the next run rebuild silver in full. The secret enters as an HMAC,
    so the fingerprint reveals nothing about it.
    """
    import hashlib
    import hmac
    import json

    settings = cfg.silver.model_dump(mode="json", exclude={"incremental"})
    doc = {
        "build": BUILD_VERSION,
        "silver": settings,
        "sources": [src.model_dump(mode="json") for src in cfg.sources],
        "secret": hmac.new(key, b"cdp-silver-fingerprint", hashlib.sha256).hexdigest(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _batches(lake: Lake) -> list[dict]:
    if not lake.exists(*BATCHES):
        return []
    return [r.asDict() for r in lake.read(*BATCHES).orderBy("batch").collect()]  # one small row per silver run


def plan_batch(lake: Lake, cfg: CdpConfig, fp: str, versions: dict[str, int]) -> BatchPlan | None:
    """The next batch, or None when silver already holds every bronze version."""
    import json

    rows = _batches(lake)
    last = rows[-1] if rows else None
    if last and last["status"] == "started" and last["fingerprint"] == fp:
        return BatchPlan(
            last["batch"], last["mode"], json.loads(last["since_versions"]), json.loads(last["bronze_versions"]), fp, replay=True,
            reason=f"batch {last['batch']} of run {last['run_id']} did not finish",
        )
    committed = [r for r in rows if r["status"] == "committed"]
    batch = (last["batch"] + 1) if last else 1
    previous = committed[-1] if committed else None
    kinds = {src.kind for src in cfg.sources if src.name in versions}
    needed = {"identifiers": bool(versions), "customer_record_history": bool(kinds & set(PERSON_KINDS)), EVENT_INDEX: bool(kinds - set(PERSON_KINDS) - {"fx"})}
    missing = [t for t, needs in needed.items() if needs and not lake.exists("silver", t)]
    if not cfg.silver.incremental:
        return BatchPlan(batch, "full", {}, versions, fp, reason="silver.incremental is off")
    if previous is None:
        return BatchPlan(batch, "full", {}, versions, fp, reason="no earlier batch")
    if previous["fingerprint"] != fp:
        return BatchPlan(batch, "full", {}, versions, fp, reason="the silver build, its settings, the sources or the secret changed")
    if missing:
        return BatchPlan(batch, "full", {}, versions, fp, reason=f"silver table(s) missing: {', '.join(missing)}")
    since = {k: int(v) for k, v in json.loads(previous["bronze_versions"]).items()}
    if any(since.get(name, -1) > v for name, v in versions.items()):
        return BatchPlan(batch, "full", {}, versions, fp, reason="a bronze table is older than silver's last batch (restored or recreated)")
    if all(since.get(name) == v for name, v in versions.items()):
        return None
    return BatchPlan(batch, "incremental", since, versions, fp)


def _record_batch(spark: SparkSession, lake: Lake, plan: BatchPlan, *, run_id: str, status: str, rows_in: int, started_at) -> None:
    import json
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    row = (
        plan.batch, run_id, plan.mode, status, plan.fingerprint, json.dumps(plan.since, sort_keys=True), json.dumps(plan.versions, sort_keys=True),
        rows_in, started_at, now if status == "committed" else None,
    )  # fmt: skip
    lake.upsert(*BATCHES, spark.createDataFrame([row], BATCHES_SCHEMA), keys=["batch"])


def _read_batch(spark: SparkSession, cfg: CdpConfig, lake: Lake, plan: BatchPlan) -> tuple[BatchPlan, dict[str, DataFrame]]:
    """Bronze rows of the batch per source: whole tables (full) or the rows added since (incremental)."""
    from cdp_spark.errors import StorageError

    if plan.mode == "incremental":
        try:
            return plan, {
                name: lake.read_added("bronze", name, since_version=plan.since.get(name), version=v)
                for name, v in plan.versions.items()
                if plan.since.get(name) != v
            }
        except StorageError as err:  # the log entries of silver's last version were cleaned up
            log.warning("silver batch %d: %s; rebuilding silver in full", plan.batch, err)
            plan = BatchPlan(plan.batch, "full", {}, plan.versions, plan.fingerprint, reason="bronze's older log entries are gone")
    return plan, {name: lake.read("bronze", name, version=v) for name, v in plan.versions.items()}


def _without_erased(cfg: CdpConfig, lake: Lake, bronze: dict[str, DataFrame], key: bytes) -> dict[str, DataFrame]:
    """A replayed batch reads the bronze versions its first attempt read, and a subject erased since
    the crash is still in those versions: drop their rows as intake does (``ops.suppression``)."""
    from cdp_spark.privacy.suppression import SUPPRESSION_TABLE, suppress_source_rows

    if not cfg.privacy.suppression_enabled or not lake.exists(*SUPPRESSION_TABLE):
        return bronze
    listed = lake.read(*SUPPRESSION_TABLE).select("id_key").localCheckpoint()
    sources = {s.name: s for s in cfg.sources}
    kept = {}
    for name, df in bronze.items():
        split = suppress_source_rows(df, sources[name], key=key, suppressed=listed, gmail_rule=cfg.silver.gmail_normalization) if name in sources else None
        kept[name] = df if split is None else split[0]
    return kept


def processed_versions(lake: Lake) -> dict[str, int]:
    """Bronze table -> the version silver's last committed batch read up to ({} before the first batch):
    rows added to bronze after it are not in silver yet."""
    import json

    committed = [r for r in _batches(lake) if r["status"] == "committed"]
    return {name: int(v) for name, v in json.loads(committed[-1]["bronze_versions"]).items()} if committed else {}


def pending_batch(lake: Lake) -> int | None:
    """The number of a silver batch that started and did not finish (the next run replays it), else None."""
    rows = _batches(lake)
    return rows[-1]["batch"] if rows and rows[-1]["status"] == "started" else None


def _write(lake: Lake, name: str, df: DataFrame, *, mode: str, txn) -> None:
    if mode == "full":
        result = lake.overwrite("silver", name, df, txn=txn)
    else:
        op, keys = INCREMENT_WRITES[name]
        if op == "overwrite":
            result = lake.overwrite("silver", name, df, txn=txn)
        elif op == "append":
            result = lake.append("silver", name, df, txn=txn)
        elif op == "upsert":
            result = lake.upsert("silver", name, df, keys=keys, txn=txn)
        else:
            result = lake.replace("silver", name, df, keys=keys, txn=txn)
    if result.skipped:
        log.info("silver.%s: batch %d was written before the crash, skipped", name, txn.version)


def run_silver(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> SilverReport:
    """Bring silver up to date with bronze: in full the first time (or after a change of build,
    settings, sources or secret), otherwise only the bronze rows added since the last batch.

    Every batch is recorded in ``ops.silver_batches`` (the bronze versions it covers). Its writes carry
    the Delta transaction id ``cdp-silver``/batch, so a batch interrupted by a crash is finished by the
    next run with the same bronze versions, without writing anything twice.
    """
    from datetime import datetime, timezone

    from cdp_spark.lake import Txn
    from cdp_spark.privacy.pseudonymize import load_secret
    from cdp_spark.quality import validate_tables

    lake = lake_for(spark, cfg, run_id=run_id, stage="silver")
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=cfg.spark.mode == "embedded")
    versions = {src.name: int(lake.version("bronze", src.name)) for src in cfg.sources if lake.exists("bronze", src.name)}  # type: ignore[arg-type]
    plan = plan_batch(lake, cfg, fingerprint(cfg, key), versions)
    if plan is None:
        log.info("silver is up to date: no bronze rows added since its last batch")
        return SilverReport(rows_in=0, rows_out=0)
    plan, bronze = _read_batch(spark, cfg, lake, plan)
    if plan.replay:
        bronze = _without_erased(cfg, lake, bronze, key)
    log.info("silver batch %d (%s%s): %s", plan.batch, plan.mode, ", replay" if plan.replay else "", plan.reason or f"bronze versions {plan.since} -> {plan.versions}")
    started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    rows_in = sum(df.count() for df in bronze.values())
    if plan.mode == "full":
        built = build_full(spark, cfg, bronze, key=key)
    else:
        fx_sources = [s.name for s in cfg.sources if s.kind == "fx" and s.name in plan.versions]
        # the batch's own versions: a replayed batch reads what its first attempt read
        fx_all = _fx(spark, _by_kind(cfg, {n: lake.read("bronze", n, version=plan.versions[n]) for n in fx_sources}))
        built = build_increment(spark, cfg, lake, bronze, fx_all=fx_all, fx_changed=any(n in bronze for n in fx_sources), key=key)
    # Quality gate: every table is validated before any is written (all-or-nothing for critical failures).
    tables, quality = validate_tables(spark, cfg, lake, built.tables, run_id=run_id)
    _record_batch(spark, lake, plan, run_id=run_id, status="started", rows_in=rows_in, started_at=started_at)
    txn = Txn(TXN_APP, plan.batch)
    counts: dict[str, int] = {}
    order = [n for n in INCREMENT_WRITES if n in tables] + sorted(n for n in tables if n not in INCREMENT_WRITES)
    for name in order:
        _write(lake, name, tables[name], mode=plan.mode, txn=txn)
        counts[name] = tables[name].count()  # the validated tables are persisted: no recomputation
        log.info("silver.%s rows=%d (%s)", name, counts[name], plan.mode)
        fault_point("silver.between_tables", name)
    if built.event_index is not None:
        _write(lake, EVENT_INDEX, built.event_index, mode=plan.mode, txn=txn)
    _record_batch(spark, lake, plan, run_id=run_id, status="committed", rows_in=rows_in, started_at=started_at)
    return SilverReport(
        rows_in=rows_in, rows_out=sum(counts.values()), tables=counts, duplicates_dropped=built.dropped, quality=quality,
        batch=plan.batch, mode=plan.mode,
    )  # fmt: skip
