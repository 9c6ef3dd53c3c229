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

PROV = "struct<source:string, record_id:string, observed_at:timestamp>"


def _schema(attribute: str, dtype: str) -> str:
    return f"customer_uid string, source string, record_id string, observed_at timestamp, {attribute} {dtype}"


CANDIDATE_SCHEMA = _schema("city", "string")
OUT_SCHEMA = f"customer_uid string, city string, city_provenance {PROV}"

# Every scalar rule has its own winner for u1, in value and in provenance (see the comments).
CANDIDATES = [
    ("u1", "crm", "r1", D(2024, 1, 1), "Cologne"),  # first_non_null: the earliest value
    ("u1", "crm", "r11", D(2024, 1, 20), "Cologne"),
    ("u1", "pos", "r3", D(2024, 2, 1), "Bonn"),
    ("u1", "erp", "r8", D(2024, 2, 15), "Dortmund"),  # source_priority (erp, crm): erp's only value
    ("u1", "pos", "r4", D(2024, 3, 1), "Bonn"),
    ("u1", "legacy", "r7", D(2024, 3, 15), "Aachen"),  # min
    ("u1", "pos", "r5", D(2024, 4, 1), "Bonn"),  # most_frequent: Bonn three times, the latest Bonn
    ("u1", "app", "r6", D(2024, 5, 1), "Zwickau"),  # max
    ("u1", "web", "r2", D(2024, 6, 1), "Essen"),  # most_recent: the latest value
    ("u1", "mail", "r9", D(2024, 7, 1), None),  # latest observation says nothing: never wins
    ("u2", "crm", "r10", D(2024, 1, 1), None),  # no value at all: NULL, NULL
]
RULE_WINNERS = [
    ("most_recent", (), ("Essen", "web", "r2", D(2024, 6, 1))),
    ("first_non_null", (), ("Cologne", "crm", "r1", D(2024, 1, 1))),
    ("most_frequent", (), ("Bonn", "pos", "r5", D(2024, 4, 1))),
    ("source_priority", ("erp", "crm"), ("Dortmund", "erp", "r8", D(2024, 2, 15))),
    ("max", (), ("Zwickau", "app", "r6", D(2024, 5, 1))),
    ("min", (), ("Aachen", "legacy", "r7", D(2024, 3, 15))),
]


def _survived(spark, rows, schema, rule, priority=(), attribute="city"):
    frame = spark.createDataFrame(rows, schema)
    return frame.transform(survive([SurvivorshipRule(attribute=attribute, rule=rule, source_priority=priority)]))


def test_the_rule_test_data_gives_every_scalar_rule_its_own_winner():
    winners = [w for _, _, w in RULE_WINNERS]
    assert len({value for value, *_ in winners}) == len(winners)
    assert len({tuple(prov) for _, *prov in winners}) == len(winners)


@pytest.mark.parametrize(("rule", "priority", "winner"), RULE_WINNERS, ids=[r for r, _, _ in RULE_WINNERS])
def test_scalar_survivorship_rule_picks_the_documented_winner_and_its_provenance(spark, rule, priority, winner):
    out = _survived(spark, CANDIDATES, CANDIDATE_SCHEMA, rule, priority)
    value, source, record_id, ts = winner
    expected = spark.createDataFrame([("u1", value, (source, record_id, ts)), ("u2", None, None)], OUT_SCHEMA)
    assertDataFrameEqual(out, expected)


@pytest.mark.parametrize(
    ("priority", "winner"),
    [
        (("gone", "crm", "erp"), ("Cologne", "crm", "r11", D(2024, 1, 20))),  # a listed source never seen; the latest within crm
        (("mail", "erp"), ("Dortmund", "erp", "r8", D(2024, 2, 15))),  # mail has only a NULL: falls through
        (("gone",), ("Essen", "web", "r2", D(2024, 6, 1))),  # no listed source has a value: unlisted ones, latest first
    ],
)
def test_source_priority_takes_the_first_listed_source_with_a_value_and_ranks_unlisted_sources_last(spark, priority, winner):
    out = _survived(spark, CANDIDATES, CANDIDATE_SCHEMA, "source_priority", priority)
    value, source, record_id, ts = winner
    assertDataFrameEqual(out, spark.createDataFrame([("u1", value, (source, record_id, ts)), ("u2", None, None)], OUT_SCHEMA))


def test_union_rule_keeps_every_distinct_value_with_every_contributing_observation(spark):
    out = _survived(spark, CANDIDATES, CANDIDATE_SCHEMA, "union")
    expected = spark.createDataFrame(
        [
            (
                "u1",
                ["Aachen", "Bonn", "Cologne", "Dortmund", "Essen", "Zwickau"],
                [
                    ("app", "r6", D(2024, 5, 1)), ("crm", "r1", D(2024, 1, 1)), ("crm", "r11", D(2024, 1, 20)), ("erp", "r8", D(2024, 2, 15)),
                    ("legacy", "r7", D(2024, 3, 15)), ("pos", "r3", D(2024, 2, 1)), ("pos", "r4", D(2024, 3, 1)), ("pos", "r5", D(2024, 4, 1)),
                    ("web", "r2", D(2024, 6, 1)),
                ],  # sorted by source, record_id; the NULL observations r9 and r10 contribute nothing
            ),
            ("u2", [], []),
        ],
        f"customer_uid string, city array<string>, city_provenance array<{PROV}>",
    )
    assertDataFrameEqual(out, expected)


def test_union_of_a_list_attribute_is_the_sorted_distinct_elements_of_all_its_lists(spark):
    rows = [
        ("u1", "crm", "a", D(2024, 1, 1), ["tennis", "golf"]),
        ("u1", "web", "b", D(2024, 2, 1), ["yoga", None, "tennis"]),  # NULL elements are dropped
        ("u1", "app", "c", D(2024, 3, 1), []),  # an empty list contributes nothing
        ("u1", "pos", "d", D(2024, 4, 1), None),
        ("u2", "crm", "e", D(2024, 1, 1), None),
    ]
    out = _survived(spark, rows, _schema("interests", "array<string>"), "union", attribute="interests")
    expected = spark.createDataFrame(
        [("u1", ["golf", "tennis", "yoga"], [("crm", "a", D(2024, 1, 1)), ("web", "b", D(2024, 2, 1))]), ("u2", [], [])],
        f"customer_uid string, interests array<string>, interests_provenance array<{PROV}>",
    )
    assertDataFrameEqual(out, expected)


@pytest.mark.parametrize(
    ("rule", "rows", "winner"),
    [
        # same instant: the greatest source wins, then the greatest record id
        ("most_recent", [("crm", "a", D(2024, 5, 1), "Köln"), ("web", "b", D(2024, 5, 1), "Bonn")], ("Bonn", "web", "b", D(2024, 5, 1))),
        ("most_recent", [("crm", "b", D(2024, 5, 1), "Bonn"), ("crm", "a", D(2024, 5, 1), "Köln")], ("Bonn", "crm", "b", D(2024, 5, 1))),
        # equally frequent: the most recent value
        ("most_frequent", [("crm", "a", D(2024, 1, 1), "Köln"), ("crm", "b", D(2024, 5, 1), "Bonn")], ("Bonn", "crm", "b", D(2024, 5, 1))),
        # the mirror rule: at the same instant the smallest source wins
        ("first_non_null", [("web", "b", D(2024, 5, 1), "Bonn"), ("crm", "a", D(2024, 5, 1), "Köln")], ("Köln", "crm", "a", D(2024, 5, 1))),
        # equal extremes: provenance is the latest observation of the value
        ("max", [("crm", "a", D(2024, 5, 1), "Köln"), ("web", "b", D(2024, 1, 1), "Köln"), ("pos", "c", D(2024, 9, 1), "Bonn")],
         ("Köln", "crm", "a", D(2024, 5, 1))),
        ("min", [("crm", "a", D(2024, 1, 1), "Bonn"), ("web", "b", D(2024, 5, 1), "Bonn"), ("pos", "c", D(2024, 9, 1), "Köln")],
         ("Bonn", "web", "b", D(2024, 5, 1))),
        # within the chosen source: the latest
        ("source_priority", [("crm", "a", D(2024, 5, 1), "Köln"), ("crm", "b", D(2024, 1, 1), "Bonn"), ("web", "c", D(2024, 9, 1), "Essen")],
         ("Köln", "crm", "a", D(2024, 5, 1))),
    ],
)
def test_ties_break_on_the_latest_observation_then_source_then_record_id(spark, rule, rows, winner):
    priority = ("crm",) if rule == "source_priority" else ()
    out = _survived(spark, [("u1", *r) for r in rows], CANDIDATE_SCHEMA, rule, priority)
    value, source, record_id, ts = winner
    assertDataFrameEqual(out, spark.createDataFrame([("u1", value, (source, record_id, ts))], OUT_SCHEMA))


UNDATED = [
    ("u1", "crm", "a1", None, "Berlin"),  # the same value as a dated observation
    ("u1", "web", "b1", D(2024, 3, 1), "Berlin"),
    ("u2", "crm", "c2", None, "Hamburg"),  # only undated observations
    ("u3", "crm", "a3", None, "Aachen"),  # an undated smaller value
    ("u3", "web", "b3", D(2024, 3, 1), "Bonn"),
]


@pytest.mark.parametrize(
    ("rule", "u1", "u3"),
    [
        # an undated observation is never "first": the earliest dated one wins
        ("first_non_null", ("Berlin", "web", "b1", D(2024, 3, 1)), ("Bonn", "web", "b3", D(2024, 3, 1))),
        ("most_recent", ("Berlin", "web", "b1", D(2024, 3, 1)), ("Bonn", "web", "b3", D(2024, 3, 1))),
        # the value decides; among equal values the dated observation is the provenance
        ("min", ("Berlin", "web", "b1", D(2024, 3, 1)), ("Aachen", "crm", "a3", None)),
        ("max", ("Berlin", "web", "b1", D(2024, 3, 1)), ("Bonn", "web", "b3", D(2024, 3, 1))),
        ("most_frequent", ("Berlin", "web", "b1", D(2024, 3, 1)), ("Bonn", "web", "b3", D(2024, 3, 1))),
    ],
)
def test_an_observation_without_observed_at_wins_only_when_no_dated_one_ranks_higher(spark, rule, u1, u3):
    out = _survived(spark, UNDATED, CANDIDATE_SCHEMA, rule)
    expected = [(uid, value, (source, record_id, ts)) for uid, (value, source, record_id, ts) in (("u1", u1), ("u3", u3))]
    assertDataFrameEqual(out, spark.createDataFrame([*expected, ("u2", "Hamburg", ("crm", "c2", None))], OUT_SCHEMA))


NUMBERS = [
    ("u1", "crm", "n1", D(2024, 1, 1), 9),
    ("u1", "crm", "n2", D(2024, 2, 1), 10),
    ("u1", "web", "n3", D(2024, 3, 1), 100),
    ("u1", "web", "n4", D(2024, 4, 1), 9),
    ("u1", "app", "n5", D(2024, 5, 1), 20),
]


@pytest.mark.parametrize(
    ("rule", "value", "provenance"),
    [
        ("max", 100, ("web", "n3", D(2024, 3, 1))),  # as text "9" would be the largest
        ("min", 9, ("web", "n4", D(2024, 4, 1))),  # as text "10" would be the smallest; the latest 9
        ("most_recent", 20, ("app", "n5", D(2024, 5, 1))),
    ],
)
def test_numeric_attribute_survives_by_numeric_order(spark, rule, value, provenance):
    out = _survived(spark, NUMBERS, _schema("points", "int"), rule, attribute="points")
    assertDataFrameEqual(out, spark.createDataFrame([("u1", value, provenance)], f"customer_uid string, points int, points_provenance {PROV}"))


def test_numeric_union_is_sorted_by_value(spark):
    out = _survived(spark, NUMBERS, _schema("points", "int"), "union", attribute="points")
    provenance = [("app", "n5", D(2024, 5, 1)), ("crm", "n1", D(2024, 1, 1)), ("crm", "n2", D(2024, 2, 1)), ("web", "n3", D(2024, 3, 1)), ("web", "n4", D(2024, 4, 1))]
    expected = spark.createDataFrame([("u1", [9, 10, 20, 100], provenance)], f"customer_uid string, points array<int>, points_provenance array<{PROV}>")
    assertDataFrameEqual(out, expected)


DATES = [
    ("u1", "crm", "d1", D(2024, 1, 1), date(1990, 5, 17)),
    ("u1", "legacy", "d2", D(2024, 2, 1), date(1990, 5, 17)),
    ("u1", "web", "d3", D(2024, 3, 1), date(1991, 1, 2)),
    ("u1", "app", "d4", D(2024, 4, 1), date(1985, 12, 31)),
]


@pytest.mark.parametrize(
    ("rule", "value", "provenance"),
    [
        ("most_frequent", date(1990, 5, 17), ("legacy", "d2", D(2024, 2, 1))),
        ("first_non_null", date(1990, 5, 17), ("crm", "d1", D(2024, 1, 1))),
        ("max", date(1991, 1, 2), ("web", "d3", D(2024, 3, 1))),
        ("min", date(1985, 12, 31), ("app", "d4", D(2024, 4, 1))),
    ],
)
def test_date_attribute_survives_by_calendar_order(spark, rule, value, provenance):
    out = _survived(spark, DATES, _schema("date_of_birth", "date"), rule, attribute="date_of_birth")
    expected = spark.createDataFrame([("u1", value, provenance)], f"customer_uid string, date_of_birth date, date_of_birth_provenance {PROV}")
    assertDataFrameEqual(out, expected)


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
        "recency_days", "web_events", "app_events", "sessions", "email_opens", "consent_marketing_email", "consent_sms",
    )
    expected = spark.createDataFrame(
        [
            ("A", "Anna", "Schmidt", "Berlin", "DE", "app", ["AT", "DE"], ["app", "ecommerce", "email", "store"], ["ios"],
             {"device_id": ["h_dev"], "email": ["h_anna"]}, 1, D(2023, 6, 1), D(2024, 6, 20), 3, 180.0, 60.0, 11, 0, 1, 1, 1, True, None),
            ("B", "Emre", "Yilmaz", "Istanbul", "TR", "web", ["TR"], ["web"], [], {"phone": ["h_emre"]}, 0, D(2024, 2, 1), D(2024, 5, 30),
             0, 0.0, None, None, 2, 0, 2, 0, None, None),
        ],
        "customer_uid string, first_name string, last_name string, city string, country string, country_src string, countries array<string>, "
        "channels array<string>, platforms array<string>, id_keys map<string,array<string>>, devices int, first_seen timestamp, "
        "last_seen timestamp, orders long, revenue double, avg_order_value double, recency_days int, web_events long, app_events long, "
        "sessions long, email_opens long, consent_marketing_email boolean, consent_sms boolean",
    )
    assertDataFrameEqual(got, expected)


def test_profile_counts_only_what_was_observed_before_the_as_of_date(spark):
    inputs = _inputs(spark)
    undated = spark.createDataFrame([("crm", "c3", "TR", None, None, date(1985, 3, 3), None, None, None, None)], RECORDS_SCHEMA)
    ids = spark.createDataFrame([("crm", "c3", "B")], "source string, record_id string, customer_uid string")
    records, identity_map = inputs.records.unionByName(undated), inputs.identity_map.unionByName(ids)
    inputs = ProfileInputs(records, inputs.identifiers, inputs.interactions, inputs.orders, inputs.consents, identity_map)
    as_of = date(2024, 4, 3)  # back-dated: o3 (Apr 5), o4 (Jun 20), every interaction and nothing else come later
    profile = build_profile(inputs, as_of=as_of)
    got = profile.select(
        "customer_uid", "first_name", "date_of_birth", "date_of_birth_provenance", "countries", "channels", "first_seen", "last_seen", "orders",
        "revenue", "last_order_at", "recency_days", "web_events", "app_events", "sessions", "email_opens",
    )
    expected = spark.createDataFrame(
        [
            ("A", "Anna", date(1990, 5, 17), ("crm", "c1", D(2024, 1, 10)), ["DE"], ["ecommerce", "store"], D(2023, 6, 1), D(2024, 4, 1, 9),
             2, 150.0, D(2024, 4, 1, 9), 2, 0, 0, 0, 0),
            # the undated record still counts (nothing says it is later) but sets neither first_seen nor last_seen
            ("B", "Emre", date(1985, 3, 3), ("crm", "c3", None), ["TR"], [], D(2024, 2, 1), D(2024, 2, 1), 0, 0.0, None, None, 0, 0, 0, 0),
        ],
        "customer_uid string, first_name string, date_of_birth date, "
        "date_of_birth_provenance struct<source:string, record_id:string, observed_at:timestamp>, countries array<string>, "
        "channels array<string>, first_seen timestamp, last_seen timestamp, orders long, revenue double, last_order_at timestamp, "
        "recency_days int, web_events long, app_events long, sessions long, email_opens long",
    )
    assertDataFrameEqual(got, expected)
    # the same purchases as the features at that cutoff
    features = build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=as_of)
    assertDataFrameEqual(
        profile.select("customer_uid", F.col("orders").alias("frequency"), F.col("revenue").alias("monetary"), "recency_days"),
        features.select("customer_uid", "frequency", "monetary", "recency_days"),
    )


def test_records_of_a_source_without_event_times_are_undated_in_gold(spark):
    """Silver stamps a legacy record (no event-time column) with its ingestion time: in gold it must not
    move the as-of date to the ingestion day, fall after the as-of cut, or win "most recent"."""
    from cdp_spark.config import SourceConfig
    from cdp_spark.profiles.stage import as_of_date, with_observation_times

    inputs = _inputs(spark)
    # Emre's legacy record, ingested on 2024-09-30, months after the last event (2024-06-20)
    legacy = spark.createDataFrame([("legacy", "l2", "TR", "Emre", "Yilmaz", date(1988, 1, 1), None, "Ankara", None, D(2024, 9, 30, 8))], RECORDS_SCHEMA)
    sources = [
        SourceConfig(name="crm", kind="customer", path="crm/*.csv", format="csv", record_key="id", event_time_column="updated_at"),
        SourceConfig(name="legacy", kind="person", path="legacy/*.csv", format="csv", record_key="id"),
    ]
    records = with_observation_times(inputs.records.unionByName(legacy), sources)
    assertDataFrameEqual(
        records.select("source", "record_id", "updated_at"),
        spark.createDataFrame(
            [("crm", "c1", D(2024, 1, 10)), ("legacy", "l1", None), ("crm", "c2", D(2024, 2, 1)), ("legacy", "l2", None)],
            "source string, record_id string, updated_at timestamp",
        ),
    )
    identity_map = inputs.identity_map.unionByName(spark.createDataFrame([("legacy", "l2", "B")], "source string, record_id string, customer_uid string"))
    inputs = ProfileInputs(records, inputs.identifiers, inputs.interactions, inputs.orders, inputs.consents, identity_map)

    as_of = as_of_date(inputs, None)
    assert as_of == date(2024, 6, 21)  # the day after the last dated event, not after the ingestion
    got = build_profile(inputs, as_of=as_of).where("customer_uid = 'B'").select("city", "date_of_birth", "first_seen", "last_seen")
    # the dated CRM city wins "most recent"; the legacy date of birth is the only one and still counts
    assertDataFrameEqual(got, spark.createDataFrame([("Istanbul", date(1988, 1, 1), D(2024, 2, 1), D(2024, 5, 30))],
                                                    "city string, date_of_birth date, first_seen timestamp, last_seen timestamp"))
    features = build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=as_of)
    assert features.where("customer_uid = 'B'").select("age_years").first()["age_years"] == 36


SESSION_EVENTS = [
    # S: 10:00 and 10:20 are one web session, 11:00 (40 minutes later) a second, the next morning a third
    ("web", "s1", "DE", D(2024, 5, 10, 10), "web_event", "page_view", "web", None),
    ("web", "s2", "DE", D(2024, 5, 10, 10, 20), "web_event", "page_view", "web", None),
    ("web", "s3", "DE", D(2024, 5, 10, 11), "web_event", "add_to_cart", "web", None),
    ("web", "s4", "DE", D(2024, 5, 11, 9), "web_event", "page_view", "web", None),
    # T: a pause of exactly the gap stays in the session; the app is sessionized on its own; email is no session
    ("web", "t1", "TR", D(2024, 5, 10, 10), "web_event", "page_view", "web", None),
    ("web", "t2", "TR", D(2024, 5, 10, 10, 30), "web_event", "page_view", "web", None),
    ("app", "t3", "TR", D(2024, 5, 10, 10, 5), "app_event", "page_view", "app", "ios"),
    ("mkt", "t4", "TR", D(2024, 5, 10, 10, 10), "marketing", "open", "email", None),
]


def _session_inputs(spark, extra_events=()):
    rows = SESSION_EVENTS + list(extra_events)
    identity_map = spark.createDataFrame([(src, rid, rid[0].upper()) for src, rid, *_ in rows], "source string, record_id string, customer_uid string")
    return ProfileInputs(
        records=spark.createDataFrame([], RECORDS_SCHEMA),
        identifiers=spark.createDataFrame([], "source string, record_id string, id_type string, id_key string"),
        interactions=spark.createDataFrame(rows, INTERACTIONS_SCHEMA),
        orders=spark.createDataFrame([], ORDERS_SCHEMA),
        consents=spark.createDataFrame([], CONSENT_SCHEMA),
        identity_map=identity_map,
    )


@pytest.mark.parametrize(("gap", "s_sessions", "t_sessions"), [(30, 3, 2), (60, 2, 2), (10, 4, 3)])
def test_sessions_start_after_a_pause_longer_than_the_gap_per_customer_and_channel(spark, gap, s_sessions, t_sessions):
    profile = build_profile(_session_inputs(spark), as_of=date(2024, 6, 1), session_gap_minutes=gap)
    expected = spark.createDataFrame(
        [("S", 4, 0, s_sessions, 0), ("T", 2, 1, t_sessions, 1)],
        "customer_uid string, web_events long, app_events long, sessions long, email_opens long",
    )
    assertDataFrameEqual(profile.select("customer_uid", "web_events", "app_events", "sessions", "email_opens"), expected)


@pytest.mark.parametrize(("cutoff", "s_30d", "s_90d"), [(date(2024, 5, 11), 2, 3), (date(2024, 5, 12), 3, 4)])
def test_session_features_count_sessions_started_in_the_window_from_events_before_the_cutoff(spark, cutoff, s_30d, s_90d):
    older = [("web", "s0", "DE", D(2024, 4, 1, 12), "web_event", "page_view", "web", None)]  # outside 30 days, inside 90
    inputs = _session_inputs(spark, older)
    features = build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=cutoff)
    expected = spark.createDataFrame(
        [("S", s_30d, s_90d), ("T", 2, 2)], "customer_uid string, sessions_30d long, sessions_90d long"
    )
    assertDataFrameEqual(features.select("customer_uid", "sessions_30d", "sessions_90d"), expected)


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
