"""Event vocabulary shared by the profile and the feature builder (one place to adapt to new sources)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.errors import MissingColumnsError

# Orders in these states bring no revenue and do not count as purchases.
EXCLUDED_ORDER_STATUSES = ("cancelled", "canceled", "returned", "refunded", "failed")
EMAIL_OPEN_TYPES = ("open", "opened", "email_open")
EMAIL_CLICK_TYPES = ("click", "clicked", "email_click")
CART_ADD_TYPES = ("add_to_cart", "cart_add")
# Interaction kinds that make up sessions, each sessionized on its own (a web and an app visit at the same time are two sessions).
SESSION_KINDS = ("web_event", "app_event")
DEFAULT_SESSION_GAP_MINUTES = 30


def is_purchase(status: Column) -> Column:
    """Whether an order counts (a missing status counts as completed)."""
    return ~F.coalesce(F.lower(status), F.lit("completed")).isin(*EXCLUDED_ORDER_STATUSES)


def require(df: DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = set(columns) - set(df.columns)
    if missing:
        raise MissingColumnsError(missing, where)


def resolved(df: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Rows of a silver table with the ``customer_uid`` of their record (unresolved rows dropped)."""
    return df.join(identity_map.select("source", "record_id", "customer_uid"), ["source", "record_id"])


def before(cutoff: date) -> Column:
    """Whether an observation happened strictly before 00:00 of ``cutoff`` (session time zone; NULL when undated)."""
    return F.col("observed_at") < F.lit(cutoff).cast("timestamp")


def count_if(cond: Column) -> Column:
    """Number of rows where ``cond`` holds, as a long (0, never null)."""
    return F.coalesce(F.sum(F.when(cond, 1).otherwise(0)), F.lit(0)).cast("long")


PERSON_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("first_name", "string"),
    ("last_name", "string"),
    ("date_of_birth", "date"),
    ("gender", "string"),
    ("city", "string"),
    ("postcode", "string"),
)
RECORD_KIND = "record"
ORDER_KIND = "order"


def observations(records: DataFrame | None, orders: DataFrame, interactions: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Records, orders and interactions in one frame, resolved to customers with a single join.

    Person attributes a records frame lacks are NULL (the profile checks for them itself).

    ``customer_uid, source, record_id, observed_at, kind ('record' | 'order' | the interaction kind),
    country, <person attributes> (records only), channel, platform, event_type, status, amount_reporting``.
    """
    require(orders, ("source", "record_id", "order_ts", "status", "channel", "country", "amount_reporting"), "silver.orders")
    require(interactions, ("source", "record_id", "event_ts", "kind", "event_type", "channel", "platform", "country"), "silver.interactions")
    require(identity_map, ("source", "record_id", "customer_uid"), "gold.identity_map")

    def null(dtype: str) -> Column:
        return F.lit(None).cast(dtype)

    person_nulls = [null(t).alias(a) for a, t in PERSON_ATTRIBUTES]
    frames = [
        orders.select(
            "source", "record_id", F.col("order_ts").alias("observed_at"), F.lit(ORDER_KIND).alias("kind"), "country", *person_nulls,
            "channel", null("string").alias("platform"), null("string").alias("event_type"), "status", F.col("amount_reporting").cast("double"),
        ),
        interactions.select(
            "source", "record_id", F.col("event_ts").alias("observed_at"), "kind", "country", *person_nulls,
            "channel", "platform", F.lower("event_type").alias("event_type"), null("string").alias("status"), null("double").alias("amount_reporting"),
        ),
    ]
    if records is not None:
        require(records, ("source", "record_id", "updated_at", "country"), "silver.customer_records")
        frames.insert(0, records.select(
            "source", "record_id", F.col("updated_at").alias("observed_at"), F.lit(RECORD_KIND).alias("kind"), "country",
            *[(F.col(a) if a in records.columns else F.lit(None)).cast(t).alias(a) for a, t in PERSON_ATTRIBUTES],
            null("string").alias("channel"), null("string").alias("platform"), null("string").alias("event_type"),
            null("string").alias("status"), null("double").alias("amount_reporting"),
        ))
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return resolved(union, identity_map)


def with_session_starts(gap_minutes: int) -> Callable[[DataFrame], DataFrame]:
    """Add ``session_start``: whether a web/app observation opens a session of its customer and kind.

    A session is a run of the customer's events of one kind (:data:`SESSION_KINDS`) with no pause
    longer than ``gap_minutes``; the first dated event and every event more than ``gap_minutes``
    after the previous one start a session. Events without a timestamp start none. Sessions are per
    resolved customer, not per cookie or device (``silver.interactions`` does not carry them): a
    customer's web events from two browsers within the gap are one session. The rows are
    hash-partitioned by ``customer_uid`` first, so the window (one sort, ``lag`` over ``observed_at``)
    and a later per-customer ``groupBy`` share one shuffle.
    """
    if gap_minutes < 1:
        raise ValueError(f"session gap must be at least 1 minute, got {gap_minutes}")
    gap_micros = gap_minutes * 60 * 1_000_000

    def apply(df: DataFrame) -> DataFrame:
        require(df, ("customer_uid", "kind", "observed_at", "source", "record_id"), "session input")
        w = Window.partitionBy("customer_uid", "kind").orderBy(F.col("observed_at").asc_nulls_first(), "source", "record_id")
        ts = F.col("observed_at")
        pause = F.unix_micros(ts) - F.unix_micros(F.lag(ts).over(w))  # NULL for the first (or first dated) event
        starts = F.col("kind").isin(*SESSION_KINDS) & ts.isNotNull() & F.coalesce(pause > gap_micros, F.lit(True))
        return df.repartition("customer_uid").withColumn("session_start", starts)

    return apply
