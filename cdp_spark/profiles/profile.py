"""``gold.customer_profile``: one row per ``customer_uid``, the unified 360° view.

Columns (in order):

* golden attributes ``first_name, last_name, date_of_birth, gender, city, postcode, country``, each with
  ``<attr>_provenance`` (``struct<source, record_id, observed_at>``; an array of them for ``union``),
  chosen by :mod:`cdp_spark.profiles.survivorship`. Names, birth date, gender, city and postcode come
  from customer records; ``country`` also from every order and interaction of the customer.
* ``countries, channels, platforms``: sorted distinct values seen; ``id_keys``: ``map<id_type, array<id_key>>``
  of the customer's keyed identifier hashes (never raw emails or phones); ``devices``: distinct device ids.
* ``first_seen, last_seen``: over records, orders and interactions.
* ``orders, revenue`` (reporting currency), ``avg_order_value, first_order_at, last_order_at, recency_days``
  (days from the last order to ``as_of_date``, at least 1) and ``r_score, f_score, m_score``: quintiles 1-5
  among buyers (5 = most recent / most frequent / highest revenue; equal values share a score; NULL without orders).
* ``web_events, web_active_days, app_events, app_active_days, sessions, email_opens, email_clicks``;
  ``sessions``: web and app sessions (per customer and kind, a pause longer than ``session_gap_minutes``
  starts a new one; see :func:`cdp_spark.profiles._events.with_session_starts`).
* ``consent_<purpose>`` for every purpose in :data:`cdp_spark.profiles.consent.PURPOSES`.
* ``as_of_date``.

Only what was observed before ``as_of_date`` (00:00) counts, as for the features: records updated,
orders placed and events on or after it are left out, so a back-dated run never sees its future.
Records without ``updated_at`` still count (nothing says they are later). Consent is always the
current state (a revocation recorded after ``as_of_date`` still applies), and the identity map and
identifiers are taken as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import SurvivorshipRule
from cdp_spark.profiles._events import (
    DEFAULT_SESSION_GAP_MINUTES,
    EMAIL_CLICK_TYPES,
    EMAIL_OPEN_TYPES,
    ORDER_KIND,
    before,
    count_if,
    is_purchase,
    observations,
    require,
    with_session_starts,
)
from cdp_spark.profiles.consent import PURPOSES, consent_column, consent_state, customer_subjects
from cdp_spark.profiles.survivorship import check_rules, survive

ATTRIBUTES: tuple[str, ...] = ("first_name", "last_name", "date_of_birth", "gender", "city", "postcode", "country")

DEFAULT_RULES: tuple[SurvivorshipRule, ...] = (
    SurvivorshipRule(attribute="first_name", rule="most_recent"),
    SurvivorshipRule(attribute="last_name", rule="most_recent"),
    SurvivorshipRule(attribute="date_of_birth", rule="most_frequent"),
    SurvivorshipRule(attribute="gender", rule="most_recent"),
    SurvivorshipRule(attribute="city", rule="most_recent"),
    SurvivorshipRule(attribute="postcode", rule="most_recent"),
    SurvivorshipRule(attribute="country", rule="most_frequent"),
)

_RFM = (("r_score", "_recency_key"), ("f_score", "orders"), ("m_score", "revenue"))
_QUINTILES = [0.2, 0.4, 0.6, 0.8]


@dataclass(frozen=True)
class ProfileInputs:
    """The silver and identity tables a profile is built from."""

    records: DataFrame  # silver.customer_records
    identifiers: DataFrame  # silver.identifiers
    interactions: DataFrame  # silver.interactions
    orders: DataFrame  # silver.orders
    consents: DataFrame  # silver.consents
    identity_map: DataFrame  # gold.identity_map


def effective_rules(configured: Sequence[SurvivorshipRule]) -> tuple[SurvivorshipRule, ...]:
    """Configured rules, and the default rule for every attribute the configuration leaves out."""
    check_rules(configured, ATTRIBUTES)
    chosen = {r.attribute: r for r in configured}
    return tuple(chosen.get(d.attribute, d) for d in DEFAULT_RULES)


def _per_customer() -> dict[str, Column]:
    """Activity, purchase and engagement aggregates over a customer's observations (one pass with survivorship)."""
    ts, kind, etype = F.col("observed_at"), F.col("kind"), F.col("event_type")
    bought = (kind == ORDER_KIND) & is_purchase(F.col("status"))

    def active_days(k: str) -> Column:
        return F.size(F.collect_set(F.when(kind == k, F.to_date(ts))))

    return {
        "countries": F.array_sort(F.collect_set("country")),
        "channels": F.array_sort(F.collect_set("channel")),
        "platforms": F.array_sort(F.collect_set("platform")),
        "first_seen": F.min(ts),
        "last_seen": F.max(ts),
        "orders": count_if(bought),
        "revenue": F.coalesce(F.sum(F.when(bought, F.col("amount_reporting"))), F.lit(0.0)),
        "first_order_at": F.min(F.when(bought, ts)),
        "last_order_at": F.max(F.when(bought, ts)),
        "web_events": count_if(kind == "web_event"),
        "web_active_days": active_days("web_event"),
        "app_events": count_if(kind == "app_event"),
        "app_active_days": active_days("app_event"),
        "sessions": count_if(F.col("session_start")),
        "email_opens": count_if((kind == "marketing") & etype.isin(*EMAIL_OPEN_TYPES)),
        "email_clicks": count_if((kind == "marketing") & etype.isin(*EMAIL_CLICK_TYPES)),
    }


def _identifier_lists(subjects: DataFrame) -> DataFrame:
    per_type = subjects.groupBy("customer_uid", "id_type").agg(F.array_sort(F.collect_set("id_key")).alias("keys"))
    return per_type.groupBy("customer_uid").agg(
        F.map_from_entries(F.array_sort(F.collect_list(F.struct("id_type", "keys")))).alias("id_keys")
    )


def _exceeded_by(value_col: str):
    return lambda threshold: F.col(value_col).cast("double") > threshold


def with_rfm_scores(as_of: date) -> Callable[[DataFrame], DataFrame]:
    """Add ``recency_days, r_score, f_score, m_score`` to per-customer rows (``orders, revenue, last_order_at``).

    Quintile thresholds are the 20/40/60/80th percentiles over buyers (``orders > 0``; one aggregate,
    broadcast back); a score is 1 + the number of thresholds the value exceeds, so equal values share
    a score. Customers without orders get NULLs.
    """

    def apply(df: DataFrame) -> DataFrame:
        require(df, ("customer_uid", "orders", "revenue", "last_order_at"), "RFM input")
        keyed = df.withColumn("recency_days", F.datediff(F.lit(as_of), F.to_date("last_order_at"))).withColumn(
            "_recency_key", -F.col("recency_days")
        )
        buyers = keyed.where(F.col("orders") > 0)
        thresholds = buyers.agg(*[F.percentile_approx(F.col(src).cast("double"), _QUINTILES).alias(f"_t_{name}") for name, src in _RFM])
        scored = keyed.crossJoin(F.broadcast(thresholds))
        scores = [
            F.when(F.col("orders") > 0, F.size(F.filter(F.col(f"_t_{name}"), _exceeded_by(src))) + 1).cast("int").alias(name)
            for name, src in _RFM
        ]
        return scored.select(*df.columns, "recency_days", *scores)

    return apply


def build_profile(
    inputs: ProfileInputs,
    *,
    rules: Sequence[SurvivorshipRule] = (),
    as_of: date,
    session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES,
) -> DataFrame:
    """The customer profile (see the module docstring for the columns) from what was observed before ``as_of``.

    ``rules`` override :data:`DEFAULT_RULES` per attribute. Every ``customer_uid`` of the identity map
    gets one row, also customers known only from anonymous events.
    """
    require(inputs.records, ("source", "record_id", "updated_at", *ATTRIBUTES), "silver.customer_records")
    require(inputs.identifiers, ("source", "record_id", "id_type", "id_key"), "silver.identifiers")
    chosen = effective_rules(rules)
    observed = (
        observations(inputs.records, inputs.orders, inputs.interactions, inputs.identity_map)
        .where(F.col("observed_at").isNull() | before(as_of))
        .transform(with_session_starts(session_gap_minutes))
    )
    per_customer = observed.transform(survive(chosen, also=_per_customer())).transform(with_rfm_scores(as_of))
    subjects = customer_subjects(inputs.identifiers, inputs.identity_map)
    customers = inputs.identity_map.select("customer_uid").distinct()
    joined = (
        customers.join(per_customer, "customer_uid", "left")
        .join(_identifier_lists(subjects), "customer_uid", "left")
        .join(consent_state(inputs.consents, subjects), "customer_uid", "left")
    )
    zero = F.lit(0).cast("long")
    golden_cols = [c for a in ATTRIBUTES for c in (a, f"{a}_provenance")]
    counts = ("web_events", "web_active_days", "app_events", "app_active_days", "sessions", "email_opens", "email_clicks")
    no_strings = F.array().cast("array<string>")
    return joined.select(
        "customer_uid",
        *golden_cols,
        *[F.coalesce(c, no_strings).alias(c) for c in ("countries", "channels", "platforms")],
        F.coalesce("id_keys", F.create_map().cast("map<string,array<string>>")).alias("id_keys"),
        F.coalesce(F.size(F.col("id_keys")["device_id"]), F.lit(0)).cast("int").alias("devices"),
        "first_seen",
        "last_seen",
        F.coalesce("orders", zero).alias("orders"),
        F.coalesce("revenue", F.lit(0.0)).alias("revenue"),
        F.when(F.col("orders") > 0, F.col("revenue") / F.col("orders")).alias("avg_order_value"),
        "first_order_at",
        "last_order_at",
        "recency_days",
        "r_score",
        "f_score",
        "m_score",
        *[F.coalesce(c, zero).cast("long").alias(c) for c in counts],
        *[consent_column(p) for p in PURPOSES],
        F.lit(as_of).alias("as_of_date"),
    )
