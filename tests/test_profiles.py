"""Gold profiles: survivorship rules, consent state, RFM quintiles, profile rows, point-in-time features."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import SurvivorshipRule
from cdp_spark.errors import ConfigError
from cdp_spark.profiles import ProfileInputs, build_features, build_profile, consent_state, survive, with_rfm_scores
from cdp_spark.profiles.profile import effective_rules

D = datetime

CANDIDATES = [
    ("u1", "crm", "r1", D(2024, 1, 1), "Berlin"),
    ("u1", "web", "r2", D(2024, 3, 1), "Munich"),
    ("u1", "crm", "r3", D(2024, 2, 1), "Berlin"),
    ("u1", "pos", "r4", D(2024, 4, 1), None),  # latest observation says nothing: never wins
    ("u2", "crm", "r5", D(2024, 1, 1), None),
]
CANDIDATE_SCHEMA = "customer_uid string, source string, record_id string, observed_at timestamp, city string"
OUT_SCHEMA = "customer_uid string, city string, city_provenance struct<source:string, record_id:string, observed_at:timestamp>"


@pytest.mark.parametrize(
    ("rule", "priority", "winner"),
    [
        ("most_recent", (), ("Munich", "web", "r2", D(2024, 3, 1))),
        ("first_non_null", (), ("Berlin", "crm", "r1", D(2024, 1, 1))),
        ("most_frequent", (), ("Berlin", "crm", "r3", D(2024, 2, 1))),  # provenance: latest Berlin
        ("source_priority", ("pos", "crm", "web"), ("Berlin", "crm", "r3", D(2024, 2, 1))),  # pos has no value
        ("source_priority", ("web",), ("Munich", "web", "r2", D(2024, 3, 1))),
        ("max", (), ("Munich", "web", "r2", D(2024, 3, 1))),
        ("min", (), ("Berlin", "crm", "r3", D(2024, 2, 1))),  # latest of the equal minima
    ],
)
def test_scalar_survivorship_rule_picks_the_documented_winner_and_its_provenance(spark, rule, priority, winner):
    candidates = spark.createDataFrame(CANDIDATES, CANDIDATE_SCHEMA)
    out = candidates.transform(survive([SurvivorshipRule(attribute="city", rule=rule, source_priority=priority)]))
    value, source, record_id, ts = winner
    expected = spark.createDataFrame([("u1", value, (source, record_id, ts)), ("u2", None, None)], OUT_SCHEMA)
    assertDataFrameEqual(out, expected)


def test_union_rule_keeps_every_distinct_value_with_every_contributing_record(spark):
    candidates = spark.createDataFrame(CANDIDATES, CANDIDATE_SCHEMA)
    out = candidates.transform(survive([SurvivorshipRule(attribute="city", rule="union")]))
    expected = spark.createDataFrame(
        [
            ("u1", ["Berlin", "Munich"], [("crm", "r1", D(2024, 1, 1)), ("crm", "r3", D(2024, 2, 1)), ("web", "r2", D(2024, 3, 1))]),
            ("u2", [], []),
        ],
        "customer_uid string, city array<string>, city_provenance array<struct<source:string, record_id:string, observed_at:timestamp>>",
    )
    assertDataFrameEqual(out, expected)


def test_most_frequent_tie_goes_to_the_most_recent_value(spark):
    rows = [("u1", "crm", "a", D(2024, 1, 1), "Köln"), ("u1", "crm", "b", D(2024, 5, 1), "Bonn")]
    out = spark.createDataFrame(rows, CANDIDATE_SCHEMA).transform(survive([SurvivorshipRule(attribute="city", rule="most_frequent")]))
    assertDataFrameEqual(out, spark.createDataFrame([("u1", "Bonn", ("crm", "b", D(2024, 5, 1)))], OUT_SCHEMA))


def test_source_priority_without_sources_is_a_config_error():
    with pytest.raises(Exception, match="source_priority needs the list of sources"):
        SurvivorshipRule(attribute="city", rule="source_priority")


def test_rule_for_an_unknown_attribute_fails_naming_it():
    with pytest.raises(ConfigError, match=r"gold.survivorship\[0\] \(attribute 'shoe_size'\): unknown attribute"):
        effective_rules([SurvivorshipRule(attribute="shoe_size", rule="max")])


def test_configured_rules_replace_only_their_attribute_defaults():
    rules = {r.attribute: r.rule for r in effective_rules([SurvivorshipRule(attribute="city", rule="first_non_null")])}
    assert rules == {
        "first_name": "most_recent",
        "last_name": "most_recent",
        "date_of_birth": "most_frequent",
        "gender": "most_recent",
        "city": "first_non_null",
        "postcode": "most_recent",
        "country": "most_frequent",
    }


CONSENT_SCHEMA = "subject_type string, subject_key string, purpose string, granted boolean, valid_from timestamp, is_current boolean"


def test_consent_state_is_the_latest_current_event_across_subjects_and_revocation_wins_ties(spark):
    subjects = spark.createDataFrame(
        [("u1", "customer_id", "k_cid"), ("u1", "email", "k_mail"), ("u2", "email", "k_other")], "customer_uid string, id_type string, id_key string"
    )
    t1, t2 = D(2024, 1, 1), D(2024, 2, 1)
    consents = spark.createDataFrame(
        [
            ("customer_id", "k_cid", "marketing_email", True, t1, True),
            ("email", "k_mail", "marketing_email", False, t2, True),  # later revocation via the email subject
            ("customer_id", "k_cid", "sms", True, t1, True),
            ("email", "k_mail", "sms", False, t1, True),  # same instant: revoked wins
            ("customer_id", "k_cid", "ads", False, t1, False),  # superseded
            ("customer_id", "k_cid", "ads", True, t2, True),
            ("email", "k_cid", "analytics", True, t1, True),  # wrong subject type: not this customer's
            ("email", "k_other", "analytics", True, t2, True),
        ],
        CONSENT_SCHEMA,
    )
    expected = spark.createDataFrame(
        [("u1", False, False, True, None, None), ("u2", None, None, None, True, None)],
        "customer_uid string, consent_marketing_email boolean, consent_sms boolean, consent_ads boolean, consent_analytics boolean, consent_profiling boolean",
    )
    assertDataFrameEqual(consent_state(consents, subjects), expected)


def test_rfm_scores_are_quintiles_with_five_for_the_best_and_null_without_orders(spark):
    rows = [(f"u{i:02d}", i, float(10 * i), D(2024, 6, 30 - i)) for i in range(1, 11)] + [("none", 0, 0.0, None)]
    buyers = spark.createDataFrame(rows, "customer_uid string, orders long, revenue double, last_order_at timestamp")
    out = buyers.transform(with_rfm_scores(date(2024, 7, 1))).select("customer_uid", "recency_days", "r_score", "f_score", "m_score")
    quintile = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    expected = spark.createDataFrame(
        [(f"u{i:02d}", i + 1, quintile[10 - i], quintile[i - 1], quintile[i - 1]) for i in range(1, 11)] + [("none", None, None, None, None)],
        "customer_uid string, recency_days int, r_score int, f_score int, m_score int",
    )
    assertDataFrameEqual(out, expected)


# --------------------------------------------------------------------------- silver-shaped inputs

RECORDS_SCHEMA = (
    "source string, record_id string, country string, first_name string, last_name string, date_of_birth date, "
    "gender string, city string, postcode string, updated_at timestamp"
)
ORDERS_SCHEMA = "source string, record_id string, country string, order_ts timestamp, channel string, status string, amount_reporting double"
INTERACTIONS_SCHEMA = "source string, record_id string, country string, event_ts timestamp, kind string, event_type string, channel string, platform string"


def _inputs(spark):
    records = spark.createDataFrame(
        [
            ("crm", "c1", "DE", "Anna", "Schmidt", date(1990, 5, 17), "f", "Berlin", "10115", D(2024, 1, 10)),
            ("legacy", "l1", "DE", "Anne", None, date(1990, 5, 17), None, "Hamburg", None, D(2023, 6, 1)),
            ("crm", "c2", "TR", "Emre", "Yilmaz", None, "m", "Istanbul", "34000", D(2024, 2, 1)),
        ],
        RECORDS_SCHEMA,
    )
    orders = spark.createDataFrame(
        [
            ("shop", "o1", "DE", D(2024, 3, 1, 12), "ecommerce", "completed", 100.0),
            ("pos", "o2", "DE", D(2024, 4, 1, 9), "store", "completed", 50.0),
            ("shop", "o3", "DE", D(2024, 4, 5), "ecommerce", "cancelled", 999.0),
            ("shop", "o4", "AT", D(2024, 6, 20), "ecommerce", "completed", 30.0),  # after the feature cutoff
        ],
        ORDERS_SCHEMA,
    )
    interactions = spark.createDataFrame(
        [
            ("web", "w1", "TR", D(2024, 5, 28), "web_event", "add_to_cart", "web", None),
            ("web", "w2", "TR", D(2024, 5, 30), "web_event", "page_view", "web", None),
            ("mkt", "m1", "DE", D(2024, 5, 2), "marketing", "open", "email", None),
            ("app", "a1", "DE", D(2024, 6, 15), "app_event", "add_to_cart", "app", "ios"),  # after the cutoff
        ],
        INTERACTIONS_SCHEMA,
    )
    identity_map = spark.createDataFrame(
        [("crm", "c1", "A"), ("legacy", "l1", "A"), ("shop", "o1", "A"), ("pos", "o2", "A"), ("shop", "o3", "A"), ("shop", "o4", "A"),
         ("mkt", "m1", "A"), ("app", "a1", "A"), ("crm", "c2", "B"), ("web", "w1", "B"), ("web", "w2", "B")],
        "source string, record_id string, customer_uid string",
    )
    identifiers = spark.createDataFrame(
        [("crm", "c1", "email", "h_anna"), ("legacy", "l1", "email", "h_anna"), ("app", "a1", "device_id", "h_dev"), ("crm", "c2", "phone", "h_emre")],
        "source string, record_id string, id_type string, id_key string",
    )
    consents = spark.createDataFrame([("email", "h_anna", "marketing_email", True, D(2024, 1, 1), True)], CONSENT_SCHEMA)
    return ProfileInputs(records, identifiers, interactions, orders, consents, identity_map)


def test_profile_unifies_records_events_orders_and_consent_per_customer(spark):
    profile = build_profile(_inputs(spark), as_of=date(2024, 7, 1))
    got = profile.select(
        "customer_uid", "first_name", "last_name", "city", "country", F.col("country_provenance.source").alias("country_src"),
        "countries", "channels", "platforms", "id_keys", "devices", "first_seen", "last_seen", "orders", "revenue", "avg_order_value",
        "recency_days", "web_events", "app_events", "email_opens", "consent_marketing_email", "consent_sms",
    )
    expected = spark.createDataFrame(
        [
            ("A", "Anna", "Schmidt", "Berlin", "DE", "app", ["AT", "DE"], ["app", "ecommerce", "email", "store"], ["ios"],
             {"device_id": ["h_dev"], "email": ["h_anna"]}, 1, D(2023, 6, 1), D(2024, 6, 20), 3, 180.0, 60.0, 11, 0, 1, 1, True, None),
            ("B", "Emre", "Yilmaz", "Istanbul", "TR", "web", ["TR"], ["web"], [], {"phone": ["h_emre"]}, 0, D(2024, 2, 1), D(2024, 5, 30),
             0, 0.0, None, None, 2, 0, 0, None, None),
        ],
        "customer_uid string, first_name string, last_name string, city string, country string, country_src string, countries array<string>, "
        "channels array<string>, platforms array<string>, id_keys map<string,array<string>>, devices int, first_seen timestamp, "
        "last_seen timestamp, orders long, revenue double, avg_order_value double, recency_days int, web_events long, app_events long, "
        "email_opens long, consent_marketing_email boolean, consent_sms boolean",
    )
    assertDataFrameEqual(got, expected)


def test_profile_has_no_raw_contact_columns(spark):
    profile = build_profile(_inputs(spark), as_of=date(2024, 7, 1))
    assert [c for c in profile.columns if c in ("email", "phone", "email_norm", "phone_e164")] == []


CUTOFF = date(2024, 6, 1)


def test_features_at_a_cutoff_ignore_later_events(spark):
    inputs = _inputs(spark)
    everything = build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=CUTOFF)
    cut = F.lit(CUTOFF).cast("timestamp")
    only_before = build_features(
        inputs.orders.where(F.col("order_ts") < cut), inputs.interactions.where(F.col("event_ts") < cut), inputs.identity_map, inputs.records,
        cutoff=CUTOFF,
    )
    assertDataFrameEqual(everything, only_before)  # later events change nothing
    got = everything.select(
        "customer_uid", "cutoff_date", "country", "age_years", "tenure_days", "recency_days", "frequency", "monetary", "orders_90d",
        "store_orders", "days_since_last_store_order", "web_events_7d", "cart_adds_7d", "app_events_30d", "email_opens_90d", "channels_used",
    )
    expected = spark.createDataFrame(
        [
            ("A", CUTOFF, "DE", 34, 366, 61, 2, 150.0, 1, 1, 61, 0, 0, 0, 1, 3),
            ("B", CUTOFF, "TR", None, 121, None, 0, 0.0, 0, 0, None, 2, 1, 0, 0, 1),
        ],
        "customer_uid string, cutoff_date date, country string, age_years int, tenure_days int, recency_days int, frequency long, "
        "monetary double, orders_90d long, store_orders long, days_since_last_store_order int, web_events_7d long, cart_adds_7d long, "
        "app_events_30d long, email_opens_90d long, channels_used int",
    )
    assertDataFrameEqual(got, expected)


def test_features_skip_customers_first_seen_after_the_cutoff(spark):
    inputs = _inputs(spark)
    early = build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=date(2024, 1, 15))
    assertDataFrameEqual(early.select("customer_uid", "tenure_days", "frequency"), spark.createDataFrame([("A", 228, 0)], "customer_uid string, tenure_days int, frequency long"))
