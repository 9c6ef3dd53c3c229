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

from cdp_spark.config import CdpConfig, SourceConfig
from cdp_spark.faults import fault_point
from cdp_spark.ops import lake_for

log = logging.getLogger(__name__)

ANONYMOUS_TYPES = ("cookie_id", "device_id")
RECORD_ID_TYPE = "record"  # the identifier of a record that carries no other
# identifier type -> source column holding it (after the source's column mapping)
IDENTIFIER_COLUMNS = ("customer_id", "email", "phone", "loyalty_id", "device_id", "cookie_id", "legacy_id", "national_id")
EVENT_KINDS = ("web_event", "app_event", "marketing", "support")
ORDER_KINDS = ("order", "pos")
PERSON_KINDS = ("customer", "person")
_BRONZE_META = "_"  # bronze metadata columns start with an underscore


@dataclass(frozen=True)
class SilverReport:
    rows_in: int
    rows_out: int
    tables: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"tables": self.tables, "duplicates_dropped": self.duplicates_dropped, "quality": self.quality}


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
    """Adds ``country``, ``email_norm``/``email_reason``, ``phone_e164``/``phone_reason``."""
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


def latest_versions(history: DataFrame) -> DataFrame:
    """CRM record versions collapse to the latest per (source, record_id)."""
    order = [F.col("updated_at").desc_nulls_last(), F.col("ingested_at").desc_nulls_last(), F.col("_file_path").desc(), F.col("_line").desc()]
    return dedupe(history, key=["source", "record_id"], order=order)


def identifier_rows(df: DataFrame, *, key: bytes, ts_col: str = "event_ts") -> DataFrame:
    """One row per record x identifier: (source, record_id, id_type, id_key, anonymous, country, seen_at).

    ``df`` carries standardized identifier columns (``email_norm``, ``phone_e164``, ``customer_id``, ...).
    """
    from cdp_spark.privacy.pseudonymize import keyed_hash

    value_cols = {
        "customer_id": "customer_id",
        "email": "email_norm",
        "phone": "phone_e164",
        "loyalty_id": "loyalty_id",
        "device_id": "device_id",
        "cookie_id": "cookie_id",
        "legacy_id": "legacy_id",
        "national_id": "national_id",
    }
    present = [(t, c) for t, c in value_cols.items() if c in df.columns]
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


def orders_table(orders: DataFrame, fx: DataFrame, reporting_currency: str) -> DataFrame:
    from cdp_spark.standardize import convert_currency

    base = orders.select(
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
    converted = convert_currency(
        base, fx, amount_col="amount", currency_col="currency", date_col="order_date", reporting_currency=reporting_currency, out_col="amount_reporting"
    )
    return converted.select(*base.columns, "amount_reporting", F.lit(reporting_currency).alias("reporting_currency"))


def consents_table(consents: DataFrame, *, key: bytes) -> DataFrame:
    """Consent events → history per subject and purpose with ``valid_from``/``valid_to``."""
    from cdp_spark.privacy.pseudonymize import keyed_hash

    subject_type = F.when(F.col("customer_id").isNotNull(), F.lit("customer_id")).otherwise(F.lit("email"))
    subject_value = F.coalesce(F.col("customer_id"), F.col("email_norm"))
    df = consents.where(subject_value.isNotNull() & F.col("purpose").isNotNull()).select(
        "source",
        "record_id",
        "country",
        subject_type.alias("subject_type"),
        keyed_hash(F.concat(subject_type, F.lit(":"), subject_value), key).alias("subject_key"),
        F.lower(F.trim("purpose")).alias("purpose"),
        (F.col("consent_status") == "granted").alias("granted"),
        F.col("event_ts").alias("valid_from"),
    )
    w = Window.partitionBy("subject_key", "purpose").orderBy("valid_from", "record_id")
    return df.withColumn("valid_to", F.lead("valid_from").over(w)).withColumn("is_current", F.col("valid_to").isNull())


def fx_table(fx: DataFrame) -> DataFrame:
    return fx.select(
        F.to_date(F.col("date")).alias("date"),
        F.upper(F.trim("currency")).alias("currency"),
        F.col("rate_to_eur").try_cast("double").alias("rate_to_eur"),
    ).dropDuplicates(["date", "currency"])


# --------------------------------------------------------------------------- the stage


def build_silver(spark: SparkSession, cfg: CdpConfig, bronze: dict[str, DataFrame], *, key: bytes) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """Pure construction of every silver table from bronze DataFrames (no writes)."""
    gmail = cfg.silver.gmail_normalization
    by_kind: dict[str, list[tuple[SourceConfig, DataFrame]]] = {}
    for src in cfg.sources:
        if src.name in bronze:
            by_kind.setdefault(src.kind, []).append((src, bronze[src.name]))

    def union(frames: list[DataFrame]) -> DataFrame | None:
        out = None
        for f in frames:
            out = f if out is None else out.unionByName(f)
        return out

    dropped: dict[str, int] = {}
    tables: dict[str, DataFrame] = {}

    fx_frames = [fx_table(df) for _, df in by_kind.get("fx", [])]
    fx = union(fx_frames) if fx_frames else spark.createDataFrame([], "date date, currency string, rate_to_eur double")
    tables["fx_rates"] = fx

    people = union([person_records(s, df, gmail_rule=gmail) for k in PERSON_KINDS for s, df in by_kind.get(k, [])])
    latest = None
    if people is not None:
        people = people.cache()
        tables["customer_record_history"] = people.drop("_file_path", "_line")
        latest = latest_versions(people).drop("_file_path", "_line")

    event_frames = [event_rows(s, df, gmail_rule=gmail) for k in EVENT_KINDS + ORDER_KINDS + ("consent",) for s, df in by_kind.get(k, [])]
    events_all = union(event_frames)
    if events_all is not None:
        before = events_all.count()
        by_id = dedupe(events_all, key=["source", "record_id"], order=_first_arrival()).cache()
        content_cols = [c for c in by_id.columns if c not in ("record_id", "_ingested_at", "_file_path", "_line")]
        events = dedupe(by_id, key=content_cols, order=[F.col("record_id")]).cache()
        dropped["events"] = before - events.count()
        tables["interactions"] = interactions_table(events.where(F.col("kind").isin(*EVENT_KINDS)))
        tables["orders"] = orders_table(events.where(F.col("kind").isin(*ORDER_KINDS)), fx, cfg.silver.reporting_currency)
        tables["consents"] = consents_table(events.where(F.col("kind") == "consent"), key=key)
    else:
        events = None

    id_frames = []
    if latest is not None:
        id_frames.append(identifier_rows(latest.withColumn("event_ts", F.col("updated_at")), key=key))
        tables["pii_contacts"] = latest.select("source", "record_id", "country", "email_norm", "phone_e164")
        tables["customer_records"] = latest.select(
            "source",
            "record_id",
            "country",
            "first_name",
            "last_name",
            "name_key",
            "date_of_birth",
            "gender",
            "city",
            "postcode",
            "email_reason",
            "phone_reason",
            "updated_at",
            "ingested_at",
        )
    if events is not None:
        # Every record keeps its identifiers (so every record gets a customer_uid), even an event
        # whose content duplicates another's under a different id and is dropped from interactions.
        id_frames.append(identifier_rows(by_id, key=key))
        contacts = events.where(F.col("email_norm").isNotNull() | F.col("phone_e164").isNotNull()).select(
            "source", "record_id", "country", "email_norm", "phone_e164"
        )
        tables["pii_contacts"] = contacts if "pii_contacts" not in tables else tables["pii_contacts"].unionByName(contacts)
    if id_frames:
        tables["identifiers"] = union(id_frames)
    return tables, dropped


def run_silver(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> SilverReport:
    from cdp_spark.privacy.pseudonymize import load_secret
    from cdp_spark.quality import validate_tables

    lake = lake_for(spark, cfg, run_id=run_id, stage="silver")
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=cfg.spark.mode == "embedded")
    bronze = {src.name: lake.read("bronze", src.name) for src in cfg.sources if lake.exists("bronze", src.name)}
    rows_in = sum(df.count() for df in bronze.values())
    tables, dropped = build_silver(spark, cfg, bronze, key=key)
    # Quality gate: every table is validated before any is written (all-or-nothing for critical failures).
    tables, quality = validate_tables(spark, cfg, lake, tables, run_id=run_id)
    counts: dict[str, int] = {}
    for name, df in tables.items():
        result = lake.overwrite("silver", name, df)
        counts[name] = int(result.rows_written if result.rows_written is not None else lake.read("silver", name).count())
        log.info("silver.%s rows=%d version=%s", name, counts[name], result.version)
        fault_point("silver.between_tables", name)
    return SilverReport(rows_in=rows_in, rows_out=sum(counts.values()), tables=counts, duplicates_dropped=dropped, quality=quality)
