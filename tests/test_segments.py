"""Segments: condition validation, evaluation and membership history across runs."""

from __future__ import annotations

from datetime import datetime

import pytest
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import SegmentConfig
from cdp_spark.segments import SegmentError, current_members, evaluate_segments, membership_updates, segment_changes, validate_segments
from cdp_spark.segments.membership import MEMBERSHIP_KEYS, MEMBERSHIP_SCHEMA

FRAME_SCHEMA = "customer_uid string, country string, m_score int, r_score int, cart_adds_7d long, orders long"


def _frame(spark, rows):
    return spark.createDataFrame(rows, FRAME_SCHEMA)


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("shoe_size > 42", r"cannot be resolved: .*shoe_size"),
        ("m_score >= (1", r"is not valid Spark SQL"),
        ("m_score + 1", r"is int, not boolean"),
        ("no_such_function(country)", r"cannot be resolved: .*no_such_function"),
        # not decided per customer: an aggregate over all customers, a window across them, a generator making rows
        ("max(orders) > 1", r"is not row-level: aggregate, window and generator functions .*max\(orders\)"),
        ("rank() over (order by orders) = 1", r"is not row-level: .*WINDOW_FUNCTION"),
        ("explode(array(1)) = 1", r"is not row-level: .*UNSUPPORTED_GENERATOR"),
        ("country = 'TR' AND count(*) over (partition by country) > 10", r"is not row-level: .*WINDOW_FUNCTION"),
    ],
)
def test_wrong_segment_fails_naming_the_segment_and_the_problem(spark, condition, problem):
    segments = [SegmentConfig(name="fine", condition="m_score >= 4"), SegmentConfig(name="broken", condition=condition)]
    with pytest.raises(SegmentError, match=r"gold.segments\['broken'\]: condition .*" + problem) as info:
        validate_segments(_frame(spark, []), segments)
    assert info.value.segment == "broken"


def test_segment_names_must_be_unique(spark):
    twice = [SegmentConfig(name="vip", condition="m_score = 5"), SegmentConfig(name="vip", condition="r_score = 5")]
    with pytest.raises(Exception, match="'vip' is used twice"):
        validate_segments(_frame(spark, []), twice)


def test_evaluation_puts_each_customer_in_every_segment_whose_condition_is_true(spark):
    frame = _frame(spark, [("a", "TR", 5, 1, 2, 3), ("b", "DE", 4, 2, 0, 1), ("c", None, None, None, 1, 0)])
    segments = [
        SegmentConfig(name="high_value_at_risk", condition="m_score >= 4 AND r_score <= 2"),
        SegmentConfig(name="cart_tr", condition="country = 'TR' AND cart_adds_7d > 0"),  # NULL country: not a member
        # row-level, though written with a lambda: not mistaken for an aggregate
        SegmentConfig(name="any_top_score", condition="exists(array(m_score, r_score), s -> s = 5)"),
    ]
    expected = spark.createDataFrame(
        [("a", "high_value_at_risk"), ("b", "high_value_at_risk"), ("a", "cart_tr"), ("a", "any_top_score")], "customer_uid string, segment string"
    )
    assertDataFrameEqual(evaluate_segments(frame, segments), expected)


def _members(spark, pairs):
    return spark.createDataFrame(pairs, "customer_uid string, segment string")


def _upserted(history, updates):
    """What ``Lake.upsert(keys=MEMBERSHIP_KEYS)`` stores (the stage test in test_activation uses the real lake)."""
    kept = history.join(updates.select(*MEMBERSHIP_KEYS), list(MEMBERSHIP_KEYS), "left_anti")
    return kept.unionByName(updates).select(*MEMBERSHIP_SCHEMA.names)


def test_membership_history_records_enter_stay_and_exit_across_two_runs(spark):
    t1, t2 = datetime(2024, 6, 1), datetime(2024, 6, 2)
    run1 = membership_updates(None, _members(spark, [("a", "vip"), ("b", "vip"), ("a", "old_segment")]), run_id="r1", at=t1)
    history = _upserted(spark.createDataFrame([], MEMBERSHIP_SCHEMA), run1)
    run2 = membership_updates(history, _members(spark, [("b", "vip"), ("c", "vip")]), run_id="r2", at=t2)  # old_segment dropped
    final = _upserted(history, run2)

    expected = spark.createDataFrame(
        [
            ("a", "vip", t1, t2, "r1", "r2", "r2"),  # exited
            ("a", "old_segment", t1, t2, "r1", "r2", "r2"),  # segment no longer configured: closed
            ("b", "vip", t1, None, "r1", None, "r1"),  # stayed: untouched
            ("c", "vip", t2, None, "r2", None, "r2"),  # entered
        ],
        MEMBERSHIP_SCHEMA,
    )
    assertDataFrameEqual(final, expected)
    assertDataFrameEqual(current_members(final), _members(spark, [("b", "vip"), ("c", "vip")]))
    changes = spark.createDataFrame(
        [("vip", "c", "entered"), ("vip", "a", "exited"), ("old_segment", "a", "exited")], "segment string, customer_uid string, change string"
    )
    assertDataFrameEqual(segment_changes(final, "r2"), changes)


def test_rerunning_a_run_with_the_same_members_changes_nothing(spark):
    history = spark.createDataFrame([("b", "vip", datetime(2024, 6, 1), None, "r1", None, "r1")], MEMBERSHIP_SCHEMA)
    again = membership_updates(history, _members(spark, [("b", "vip")]), run_id="r1", at=datetime(2024, 6, 1))
    assertDataFrameEqual(again, spark.createDataFrame([], MEMBERSHIP_SCHEMA))
