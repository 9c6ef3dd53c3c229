"""Point-in-time customer features: only events strictly before the cutoff (00:00 UTC of ``cutoff``).

Used for ``gold.customer_features`` (the run's cutoff) and, by the models, for training sets at
earlier cutoffs, so it is a pure function of its input DataFrames. Windows ``_Nd`` cover
``[cutoff - N days, cutoff)``. A customer appears when it has an order, an interaction or (with
records as input) a record update before the cutoff, or an undated record (a source without event
times, see ``cdp_spark.profiles.stage.with_observation_times``), which never falls in a time window.

Columns: ``customer_uid, cutoff_date, country, age_years, tenure_days, recency_days, frequency,
monetary, avg_order_value, orders_7d/30d/90d/365d, revenue_30d/90d/365d, store_orders,
ecommerce_orders, store_share, days_since_last_store_order, web_events_7d/30d/90d,
app_events_30d/90d, sessions_30d/90d, email_opens_90d, email_clicks_90d, cart_adds_7d/30d,
active_days_30d, days_since_last_interaction, channels_used``.

``sessions_Nd``: web and app sessions that started in the window (sessionized as in the profile, from
events before the cutoff only, so a session is never split or joined by a later event).

``country``/``age_years`` come from the latest record update before the cutoff (pass
``silver.customer_record_history`` for exact history; ``silver.customer_records`` only holds each
record's latest version, so a record updated after the cutoff is not seen). ``country`` falls back
to the latest order, then interaction, country. Given a profile instead (a frame with
``customer_uid``), its ``country``/``date_of_birth`` are used as they are (not point-in-time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.errors import CdpError
from cdp_spark.profiles._events import (
    CART_ADD_TYPES,
    DEFAULT_SESSION_GAP_MINUTES,
    EMAIL_CLICK_TYPES,
    EMAIL_OPEN_TYPES,
    ORDER_KIND,
    RECORD_KIND,
    before,
    count_if,
    is_purchase,
    observations,
    require,
    with_session_starts,
)

FEATURE_INPUTS = {
    "orders": "silver.orders",
    "interactions": "silver.interactions",
    "identity_map": "gold.identity_map",
    "records": "silver.customer_records",
}


def _since(ts: Column, cutoff: date, days: int) -> Column:
    return ts >= F.lit(cutoff - timedelta(days=days)).cast("timestamp")


def _latest(value: str, where: Column) -> Column:
    """The value of the latest observation matching ``where`` that has one."""
    return F.max_by(F.col(value), F.when(where & F.col(value).isNotNull(), F.struct(F.col("observed_at"), F.col("record_id"))))


def _aggregates(cutoff: date) -> list[Column]:
    ts, kind, etype = F.col("observed_at"), F.col("kind"), F.col("event_type")
    is_order, is_record = kind == ORDER_KIND, kind == RECORD_KIND
    bought = is_order & is_purchase(F.col("status"))
    amount = F.when(bought, F.col("amount_reporting"))
    store = bought & (F.col("channel") == "store")
    web, app, email = kind == "web_event", kind == "app_event", kind == "marketing"
    interaction = ~is_order & ~is_record
    cart = (web | app) & etype.isin(*CART_ADD_TYPES)
    return [
        F.min(ts).alias("_first_seen"),
        _latest("country", is_record).alias("_r_country"),
        _latest("date_of_birth", is_record).alias("_dob"),
        _latest("country", is_order).alias("_o_country"),
        _latest("country", interaction).alias("_i_country"),
        F.max(F.when(bought, ts)).alias("_last_order"),
        F.max(F.when(store, ts)).alias("_last_store_order"),
        F.max(F.when(interaction, ts)).alias("_last_interaction"),
        count_if(bought).alias("frequency"),
        F.coalesce(F.sum(amount), F.lit(0.0)).alias("monetary"),
        *[count_if(bought & _since(ts, cutoff, d)).alias(f"orders_{d}d") for d in (7, 30, 90, 365)],
        *[F.coalesce(F.sum(F.when(_since(ts, cutoff, d), amount)), F.lit(0.0)).alias(f"revenue_{d}d") for d in (30, 90, 365)],
        count_if(store).alias("store_orders"),
        count_if(bought & (F.col("channel") != "store")).alias("ecommerce_orders"),
        *[count_if(web & _since(ts, cutoff, d)).alias(f"web_events_{d}d") for d in (7, 30, 90)],
        *[count_if(app & _since(ts, cutoff, d)).alias(f"app_events_{d}d") for d in (30, 90)],
        *[count_if(F.col("session_start") & _since(ts, cutoff, d)).alias(f"sessions_{d}d") for d in (30, 90)],
        count_if(email & etype.isin(*EMAIL_OPEN_TYPES) & _since(ts, cutoff, 90)).alias("email_opens_90d"),
        count_if(email & etype.isin(*EMAIL_CLICK_TYPES) & _since(ts, cutoff, 90)).alias("email_clicks_90d"),
        *[count_if(cart & _since(ts, cutoff, d)).alias(f"cart_adds_{d}d") for d in (7, 30)],
        F.size(F.collect_set(F.when(interaction & _since(ts, cutoff, 30), F.to_date(ts)))).alias("active_days_30d"),
        F.size(F.collect_set(F.when(bought | interaction, F.col("channel")))).alias("channels_used"),
    ]


def build_features(
    orders: DataFrame,
    interactions: DataFrame,
    identity_map: DataFrame,
    profile_or_records: DataFrame,
    *,
    cutoff: date,
    session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES,
) -> DataFrame:
    """Features per customer from events strictly before ``cutoff`` (see the module docstring)."""
    from_profile = "customer_uid" in profile_or_records.columns
    records = None if from_profile else profile_or_records
    # an undated record (a source without event times) counts, as in the profile; it never falls in a time window
    observed = (
        observations(records, orders, interactions, identity_map)
        .where(F.col("observed_at").isNull() | before(cutoff))
        .transform(with_session_starts(session_gap_minutes))
    )
    per_customer = observed.groupBy("customer_uid").agg(*_aggregates(cutoff))
    if from_profile:
        require(profile_or_records, ("customer_uid", "country", "date_of_birth"), "customer profile")
        person = profile_or_records.select("customer_uid", F.col("country").alias("_p_country"), F.col("date_of_birth").alias("_p_dob"))
        per_customer = per_customer.drop("_r_country", "_dob").join(person, "customer_uid", "left").withColumnsRenamed(
            {"_p_country": "_r_country", "_p_dob": "_dob"}
        )
    day = F.lit(cutoff)
    frequency = F.col("frequency")
    order_counts = ("frequency", "orders_7d", "orders_30d", "orders_90d", "orders_365d", "store_orders", "ecommerce_orders")
    money = ("monetary", "revenue_30d", "revenue_90d", "revenue_365d")
    event_counts = (
        "web_events_7d", "web_events_30d", "web_events_90d", "app_events_30d", "app_events_90d", "sessions_30d", "sessions_90d",
        "email_opens_90d", "email_clicks_90d", "cart_adds_7d", "cart_adds_30d",
    )
    return per_customer.select(
        "customer_uid",
        day.alias("cutoff_date"),
        F.coalesce("_r_country", "_o_country", "_i_country").alias("country"),
        F.floor(F.months_between(day, F.col("_dob")) / 12).cast("int").alias("age_years"),
        F.datediff(day, F.to_date("_first_seen")).alias("tenure_days"),
        F.datediff(day, F.to_date("_last_order")).alias("recency_days"),
        *order_counts,
        *money,
        F.when(frequency > 0, F.col("monetary") / frequency).alias("avg_order_value"),
        F.when(frequency > 0, F.col("store_orders") / frequency).alias("store_share"),
        F.datediff(day, F.to_date("_last_store_order")).alias("days_since_last_store_order"),
        *event_counts,
        F.col("active_days_30d").cast("long").alias("active_days_30d"),
        F.datediff(day, F.to_date("_last_interaction")).alias("days_since_last_interaction"),
        F.col("channels_used").cast("int").alias("channels_used"),
    )


def customer_features(
    spark: SparkSession, tables_or_lake: Any, *, cutoff: date, session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES
) -> DataFrame:
    """:func:`build_features` over the standard tables.

    ``tables_or_lake``: a :class:`cdp_spark.lake.Lake`, a lakehouse root path (opened with ``spark``),
    or a mapping from ``"silver.orders"``, ``"silver.interactions"``, ``"gold.identity_map"`` and
    ``"silver.customer_records"`` (or ``"silver.customer_record_history"``) to DataFrames.
    """
    if isinstance(tables_or_lake, str):
        from cdp_spark.lake import Lake

        tables_or_lake = Lake(spark, tables_or_lake)
    if isinstance(tables_or_lake, Mapping):
        tables = dict(tables_or_lake)
        if "silver.customer_records" not in tables and "silver.customer_record_history" in tables:
            tables["silver.customer_records"] = tables["silver.customer_record_history"]
        missing = [t for t in FEATURE_INPUTS.values() if t not in tables]
        if missing:
            raise CdpError(f"customer_features: no DataFrame for table(s) {', '.join(missing)}; pass a mapping with every table in FEATURE_INPUTS")
        frames = {arg: tables[t] for arg, t in FEATURE_INPUTS.items()}
    else:
        frames = {arg: tables_or_lake.read(*t.split(".")) for arg, t in FEATURE_INPUTS.items()}
    return build_features(
        frames["orders"], frames["interactions"], frames["identity_map"], frames["records"], cutoff=cutoff, session_gap_minutes=session_gap_minutes
    )
