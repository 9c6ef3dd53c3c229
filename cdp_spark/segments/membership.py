"""Segments: Spark SQL conditions over profile + features, and their membership history.

``gold.segment_membership`` holds one row per stay of a customer in a segment:
``customer_uid, segment, entered_at, exited_at, entered_run_id, exited_run_id, run_id``
(``exited_at`` NULL while the customer is in; ``run_id`` is the run that last wrote the row).
Each run closes the open stays of customers who left (also of segments no longer configured)
and opens one for every new member; members who stay are untouched. What a run changed:
:func:`segment_changes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import SegmentConfig
from cdp_spark.errors import ConfigError

MEMBERSHIP_SCHEMA = T.StructType(
    [
        T.StructField("customer_uid", T.StringType(), False),
        T.StructField("segment", T.StringType(), False),
        T.StructField("entered_at", T.TimestampType(), False),
        T.StructField("exited_at", T.TimestampType(), True),
        T.StructField("entered_run_id", T.StringType(), False),
        T.StructField("exited_run_id", T.StringType(), True),
        T.StructField("run_id", T.StringType(), False),
    ]
)
MEMBERSHIP_KEYS = ("segment", "customer_uid", "entered_run_id")


class SegmentError(ConfigError):
    """A segment's condition cannot be evaluated; names the segment and the problem."""

    def __init__(self, segment: str, problem: str) -> None:
        self.segment = segment
        self.problem = problem
        super().__init__(f"gold.segments[{segment!r}]: {problem}; fix the condition in the config (columns: gold.customer_profile + gold.customer_features)")


def segment_frame(profile: DataFrame, features: DataFrame) -> DataFrame:
    """What conditions see: every profile column plus the feature columns the profile does not have."""
    extra = [c for c in features.columns if c not in profile.columns]
    return profile.join(features.select("customer_uid", *extra), "customer_uid", "left")


# Spark's error conditions for expressions that are not a function of one row: aggregates
# (``max(orders) > 1``), window functions (``rank() over (...)``) and generators (``explode(...)``).
_NOT_ROW_LEVEL = ("INVALID_WHERE_CONDITION", "WINDOW_FUNCTION_NOT_ALLOWED_IN_CLAUSE", "UNSUPPORTED_GENERATOR")


def _first_line(err: Exception) -> str:
    text = getattr(err, "getMessage", lambda: str(err))() or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _member_type(frame: DataFrame, condition: str) -> T.DataType:
    """The condition's type, analysed as a column and, when boolean, as a filter (nothing runs).

    A filter admits neither aggregates, window functions nor generators, so a condition that
    passes both is decided row by row, for each customer from that customer's columns.
    """
    dtype = frame.select(F.expr(condition).alias("_member")).schema["_member"].dataType
    if isinstance(dtype, T.BooleanType):
        _ = frame.where(F.expr(condition)).schema
    return dtype


def validate_segments(frame: DataFrame, segments: Sequence[SegmentConfig]) -> None:
    """Raise :class:`SegmentError` for the first segment whose condition does not parse, names an
    unknown column or function, is not boolean, or is not row-level (uses an aggregate, window or
    generator function); :class:`ConfigError` for duplicate names. Nothing runs."""
    seen: set[str] = set()
    for seg in segments:
        if seg.name in seen:
            raise ConfigError(f"gold.segments: the name {seg.name!r} is used twice; segment names must be unique")
        seen.add(seg.name)
        if not seg.condition.strip():
            raise SegmentError(seg.name, "the condition is empty")
        try:
            dtype = _member_type(frame, seg.condition)
        except ParseException as err:
            raise SegmentError(seg.name, f"condition {seg.condition!r} is not valid Spark SQL: {_first_line(err)}") from None
        except AnalysisException as err:
            if (err.getCondition() or "").startswith(_NOT_ROW_LEVEL):
                raise SegmentError(
                    seg.name,
                    f"condition {seg.condition!r} is not row-level: aggregate, window and generator functions (max, count, "
                    f"rank() over, explode...) are not allowed, a segment is decided per customer from that customer's columns "
                    f"({_first_line(err)})",
                ) from None
            raise SegmentError(seg.name, f"condition {seg.condition!r} cannot be resolved: {_first_line(err)}") from None
        if not isinstance(dtype, T.BooleanType):
            raise SegmentError(seg.name, f"condition {seg.condition!r} is {dtype.simpleString()}, not boolean")


def evaluate_segments(frame: DataFrame, segments: Sequence[SegmentConfig]) -> DataFrame:
    """``customer_uid, segment`` for every customer whose condition is true (NULL counts as false), in one scan."""
    validate_segments(frame, segments)
    if not segments:
        return frame.sparkSession.createDataFrame([], "customer_uid string, segment string")
    hits = F.array_compact(F.array(*[F.when(F.expr(s.condition), F.lit(s.name)) for s in segments]))
    return frame.select("customer_uid", F.explode(hits).alias("segment")).select("customer_uid", "segment")


def membership_updates(history: DataFrame | None, current: DataFrame, *, run_id: str, at: datetime) -> DataFrame:
    """Rows to upsert into ``gold.segment_membership`` (keys :data:`MEMBERSHIP_KEYS`): closed stays of
    customers who left, new stays of customers who entered."""
    spark = current.sparkSession
    if history is None:
        history = spark.createDataFrame([], MEMBERSHIP_SCHEMA)
    now = F.lit(at).cast("timestamp")
    open_stays = history.where(F.col("exited_at").isNull())
    members = current.select("customer_uid", "segment").distinct()
    exits = open_stays.join(members, ["customer_uid", "segment"], "left_anti").select(
        "customer_uid", "segment", "entered_at", now.alias("exited_at"), "entered_run_id", F.lit(run_id).alias("exited_run_id"), F.lit(run_id).alias("run_id")
    )
    entries = members.join(open_stays.select("customer_uid", "segment"), ["customer_uid", "segment"], "left_anti").select(
        "customer_uid", "segment", now.alias("entered_at"), F.lit(None).cast("timestamp").alias("exited_at"),
        F.lit(run_id).alias("entered_run_id"), F.lit(None).cast("string").alias("exited_run_id"), F.lit(run_id).alias("run_id"),
    )
    return exits.unionByName(entries).select(*MEMBERSHIP_SCHEMA.names)


def segment_changes(membership: DataFrame, run_id: str) -> DataFrame:
    """``segment, customer_uid, change ('entered' | 'exited')`` made by ``run_id``."""
    entered = membership.where(F.col("entered_run_id") == run_id).select("segment", "customer_uid", F.lit("entered").alias("change"))
    exited = membership.where(F.col("exited_run_id") == run_id).select("segment", "customer_uid", F.lit("exited").alias("change"))
    return entered.unionByName(exited)


def current_members(membership: DataFrame) -> DataFrame:
    """``customer_uid, segment`` of the open stays."""
    return membership.where(F.col("exited_at").isNull()).select("customer_uid", "segment")
