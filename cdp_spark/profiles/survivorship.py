"""Survivorship: pick one golden value per customer and attribute, and say where it came from.

Input ("candidates"): one row per observation with ``customer_uid``, ``source``, ``record_id``,
``observed_at`` and one column per attribute (null when the observation says nothing about it).
Output: one row per ``customer_uid`` with ``<attr>`` and ``<attr>_provenance``
(``struct<source, record_id, observed_at>`` of the winning observation; for ``union`` an array
of the provenance of every contributing observation).

Every rule is one aggregate expression (``max_by``/``min_by`` on a deterministic ordering key,
``collect_set`` for ``union``), so all attributes survive in a single ``groupBy``. Only
``most_frequent`` needs a window first (the count of the value within the customer). Null values
never win; ties break on the most recent observation, then on ``source`` and ``record_id``.

Rules:

* ``most_recent``     the value of the latest observation.
* ``first_non_null``  the value of the earliest observation that has one (never overwritten).
* ``source_priority`` the value from the first listed source that has one (the most recent within
  that source); sources not listed rank after the listed ones.
* ``most_frequent``   the value observed most often; ties: the most recent.
* ``max`` / ``min``   the largest / smallest value; provenance: the latest observation of it.
* ``union``           the sorted distinct values (of a list attribute, an array column: the sorted
  distinct elements of all its lists); provenance: every observation contributing one, sorted.

An observation without ``observed_at`` counts as the oldest: it wins only where no dated observation
ranks higher (``first_non_null`` picks it only when no dated observation has a value). Full ties
(same value and instant) go to the greatest ``source``, then ``record_id``; for ``first_non_null``
and ``min``, the mirror rules, to the smallest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import SurvivorshipRule
from cdp_spark.errors import ConfigError, MissingColumnsError

_KEY_COLUMNS = ("customer_uid", "source", "record_id", "observed_at")


def _freq_col(attr: str) -> str:
    return f"_freq_{attr}"


def _provenance() -> Column:
    return F.struct(F.col("source"), F.col("record_id"), F.col("observed_at"))


def _candidate(attr: str) -> Column:
    return F.struct(F.col(attr).alias("value"), _provenance().alias("provenance"))


def _only_with_value(attr: str, key: Column) -> Column:
    """The ordering key, null where the attribute is null (``max_by``/``min_by`` skip null keys)."""
    return F.when(F.col(attr).isNotNull(), key)


def _newest_last() -> list[Column]:
    return [F.col("observed_at"), F.col("source"), F.col("record_id")]


def _winner(rule: SurvivorshipRule) -> Column:
    """Aggregate producing ``struct<value, provenance>`` for a scalar rule."""
    attr = rule.attribute
    cand = _candidate(attr)
    if rule.rule == "most_recent":
        return F.max_by(cand, _only_with_value(attr, F.struct(*_newest_last())))
    if rule.rule == "first_non_null":
        # Observations without a timestamp rank after every dated one.
        key = F.struct(F.col("observed_at").isNull(), F.col("observed_at"), F.col("source"), F.col("record_id"))
        return F.min_by(cand, _only_with_value(attr, key))
    if rule.rule == "source_priority":
        position = F.array_position(F.array(*[F.lit(s) for s in rule.source_priority]), F.col("source"))
        rank = F.when(position > 0, position).otherwise(F.lit(len(rule.source_priority) + 1))
        return F.max_by(cand, _only_with_value(attr, F.struct(-rank, *_newest_last())))
    if rule.rule == "most_frequent":
        return F.max_by(cand, _only_with_value(attr, F.struct(F.col(_freq_col(attr)), *_newest_last())))
    if rule.rule == "max":
        return F.max_by(cand, _only_with_value(attr, F.struct(F.col(attr), *_newest_last())))
    if rule.rule == "min":
        newest_first = F.coalesce(-F.unix_micros(F.col("observed_at")), F.lit(sys.maxsize))
        return F.min_by(cand, _only_with_value(attr, F.struct(F.col(attr), newest_first, F.col("source"), F.col("record_id"))))
    raise ConfigError(f"gold.survivorship: rule {rule.rule!r} for {attr!r} is not a scalar rule")


def _aggregates(rule: SurvivorshipRule, *, is_list: bool) -> list[Column]:
    attr = rule.attribute
    if rule.rule == "union":
        if is_list:
            items = F.array_compact(F.col(attr))
            values = F.array_distinct(F.flatten(F.collect_set(items)))
            contributes = F.size(items) > 0
        else:
            values, contributes = F.collect_set(F.col(attr)), F.col(attr).isNotNull()
        return [
            F.array_sort(values).alias(attr),
            F.array_sort(F.collect_set(F.when(contributes, _provenance()))).alias(f"{attr}_provenance"),
        ]
    return [_winner(rule).alias(f"_w_{attr}")]


def _outputs(rule: SurvivorshipRule) -> list[Column]:
    attr = rule.attribute
    if rule.rule == "union":
        return [F.col(attr), F.col(f"{attr}_provenance")]
    return [F.col(f"_w_{attr}.value").alias(attr), F.col(f"_w_{attr}.provenance").alias(f"{attr}_provenance")]


def check_rules(rules: Sequence[SurvivorshipRule], attributes: Sequence[str]) -> None:
    """Fail with a :class:`ConfigError` naming the rule when it targets an unknown or repeated attribute."""
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        where = f"gold.survivorship[{i}] (attribute {rule.attribute!r})"
        if rule.attribute not in attributes:
            raise ConfigError(f"{where}: unknown attribute; choose one of: {', '.join(attributes)}")
        if rule.attribute in seen:
            raise ConfigError(f"{where}: the attribute has two rules; keep one")
        seen.add(rule.attribute)


def survive(rules: Sequence[SurvivorshipRule], *, also: Mapping[str, Column] | None = None) -> Callable[[DataFrame], DataFrame]:
    """Candidates → one row per ``customer_uid`` with ``<attr>`` and ``<attr>_provenance`` for each rule.

    ``also``: further per-customer aggregates (output name → aggregate) computed in the same pass.
    """
    if not rules:
        raise ConfigError("gold.survivorship: no rules to apply")
    extra = dict(also or {})

    def apply(candidates: DataFrame) -> DataFrame:
        needed = set(_KEY_COLUMNS) | {r.attribute for r in rules}
        missing = needed - set(candidates.columns)
        if missing:
            raise MissingColumnsError(missing, "survivorship candidates")
        df = candidates
        if any(rule.rule == "most_frequent" for rule in rules):
            # Hash-partitioned by customer, the (customer, value) windows and the groupBy need no further shuffle.
            df = df.repartition("customer_uid")
        for rule in rules:
            if rule.rule == "most_frequent":
                w = Window.partitionBy("customer_uid", rule.attribute)
                df = df.withColumn(_freq_col(rule.attribute), F.when(F.col(rule.attribute).isNotNull(), F.count(F.lit(1)).over(w)))
        lists = {f.name for f in df.schema.fields if isinstance(f.dataType, T.ArrayType)}
        aggs = [a for rule in rules for a in _aggregates(rule, is_list=rule.attribute in lists)] + [agg.alias(name) for name, agg in extra.items()]
        grouped = df.groupBy("customer_uid").agg(*aggs)
        return grouped.select("customer_uid", *[c for rule in rules for c in _outputs(rule)], *extra)

    return apply
