"""Training sets are point-in-time correct: nothing at or after the cutoff leaks into features."""

from datetime import date, datetime

from pyspark.testing import assertDataFrameEqual

from cdp_spark.models.datasets import Inputs, training_set
from cdp_spark.models.train import feature_columns, features_at

CUTOFF = date(2025, 6, 1)
ORDERS = "source string, record_id string, order_ts timestamp, status string, channel string, country string, amount_reporting double"
EVENTS = "source string, record_id string, event_ts timestamp, kind string, event_type string, channel string, platform string, country string"
RECORDS = "source string, record_id string, updated_at timestamp, country string, date_of_birth date"


def inputs(spark, orders, events, records):
    ids = [(r[0], r[1], "U2" if r[1].endswith("2") else "U1") for r in orders + events + records]
    return Inputs(
        orders=spark.createDataFrame(orders, ORDERS),
        interactions=spark.createDataFrame(events, EVENTS),
        identity_map=spark.createDataFrame(ids, "source string, record_id string, customer_uid string").distinct(),
        records=spark.createDataFrame(records, RECORDS),
    )


BEFORE_ORDERS = [
    ("orders", "o1", datetime(2025, 3, 1), "completed", "ecommerce", "DE", 50.0),
    ("orders", "o3", datetime(2025, 5, 20), "completed", "ecommerce", "DE", 20.0),
    ("pos", "p2", datetime(2025, 4, 1), "completed", "store", "TR", 30.0),
]
BEFORE_EVENTS = [("web", "w1", datetime(2025, 5, 30), "web_event", "page_view", "web", None, "DE")]
RECORDS_ROWS = [("crm", "c1", datetime(2025, 1, 1), "DE", date(1990, 2, 3)), ("crm", "c2", datetime(2025, 1, 1), "TR", date(1985, 7, 1))]
AFTER_ORDERS = [
    ("orders", "o91", datetime(2025, 6, 1), "completed", "ecommerce", "DE", 999.0),  # exactly at the cutoff
    ("orders", "o82", datetime(2025, 7, 1), "completed", "ecommerce", "TR", 500.0),
]
AFTER_EVENTS = [("web", "w91", datetime(2025, 6, 2), "web_event", "add_to_cart", "web", None, "DE")]
AFTER_RECORDS = [("crm", "c1", datetime(2025, 6, 15), "FR", date(1990, 2, 3))]  # a later CRM version


def test_events_at_or_after_the_cutoff_do_not_change_training_features(spark):
    past = inputs(spark, BEFORE_ORDERS, BEFORE_EVENTS, RECORDS_ROWS)
    everything = inputs(spark, BEFORE_ORDERS + AFTER_ORDERS, BEFORE_EVENTS + AFTER_EVENTS, RECORDS_ROWS + AFTER_RECORDS)
    f_past = features_at(past, CUTOFF)
    f_all = features_at(everything, CUTOFF)
    cols = ["customer_uid", *feature_columns(f_past), "country"]
    assertDataFrameEqual(f_all.select(cols), f_past.select(cols))


def test_labels_come_from_the_window_after_the_cutoff(spark):
    everything = inputs(spark, BEFORE_ORDERS + AFTER_ORDERS, BEFORE_EVENTS + AFTER_EVENTS, RECORDS_ROWS + AFTER_RECORDS)
    features = features_at(everything, CUTOFF)
    churn = training_set(everything, features, task="churn", cutoff=CUTOFF, window_days=90).select("customer_uid", "label")
    # U1 buys at the cutoff (inside [cutoff, +90d)); U2 buys on 2025-07-01 (inside too): nobody churns.
    assertDataFrameEqual(churn, spark.createDataFrame([("U1", 0.0), ("U2", 0.0)], "customer_uid string, label double"))
    short = training_set(everything, features, task="propensity", cutoff=CUTOFF, window_days=20).select("customer_uid", "label")
    # A 20-day window sees U1's order at the cutoff but not U2's on 2025-07-01.
    assertDataFrameEqual(short, spark.createDataFrame([("U1", 1.0), ("U2", 0.0)], "customer_uid string, label double"))


def test_churn_population_is_buyers_before_the_cutoff(spark):
    orders = [("orders", "o1", datetime(2025, 7, 1), "completed", "ecommerce", "DE", 5.0)]  # U1's first order is after the cutoff
    data = inputs(spark, orders, BEFORE_EVENTS, RECORDS_ROWS)
    features = features_at(data, CUTOFF)
    assert training_set(data, features, task="churn", cutoff=CUTOFF, window_days=90).count() == 0
