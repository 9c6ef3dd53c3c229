"""Deletes by key set through ``Lake.delete`` (private).

A key set up to ``bound`` keys becomes a literal IN-list in the predicate; a larger one is
registered as a temporary view and the predicate is an IN-subquery, which Spark plans as a
(broadcast or sort-merge) semi-join, so predicate text and planning time stay bounded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeySet:
    """Distinct key tuples, held inline when small (``rows``) and always as a checkpointed frame."""

    frame: DataFrame
    rows: tuple[tuple, ...] | None
    size: int

    def restrict(self, column: str, value: str, *, keep: Sequence[str]) -> KeySet:
        """Keys whose ``column`` equals ``value``, projected on ``keep`` (no Spark job when inline)."""
        frame = self.frame.where(F.col(column) == value).select(*keep).distinct()
        if self.rows is None:
            return KeySet(frame, None, -1)
        idx = [self.frame.columns.index(c) for c in keep]
        pos = self.frame.columns.index(column)
        rows = tuple(sorted({tuple(r[i] for i in idx) for r in self.rows if r[pos] == value}))
        return KeySet(frame, rows, len(rows))


def key_set(df: DataFrame, *, bound: int) -> KeySet:
    """Materialize ``df``'s distinct non-null keys (so later deletes cannot change them)."""
    frame = df.dropna().distinct().localCheckpoint()
    size = frame.count()
    rows = tuple(tuple(r) for r in frame.collect()) if size <= bound else None
    return KeySet(frame, rows, size)


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


class Predicates:
    """Builds IN predicates; temporary views it registers are dropped when the context ends."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._views: list[str] = []

    @contextmanager
    def scope(self) -> Iterator[Predicates]:
        try:
            yield self
        finally:
            for view in self._views:
                self._spark.catalog.dropTempView(view)
            self._views.clear()

    def isin(self, columns: Sequence[str], keys: KeySet, *, sql: Sequence[str] | None = None) -> str | None:
        """``(cols) IN (...)`` for the key set; None when it is known to be empty.

        ``sql``: SQL expressions to compare instead of the columns themselves, one per key column
        (``get_json_object(record_key, '$.source')``); the key set's values are compared as text.
        """
        if sql is not None and len(sql) != len(columns):
            raise ValueError(f"isin: {len(sql)} expression(s) for {len(columns)} key column(s)")
        target = ", ".join(sql if sql is not None else [_quoted(c) for c in columns])
        target = target if len(columns) == 1 else f"({target})"
        if keys.rows is not None:
            if not keys.rows:
                return None
            values = [
                sql_string(str(r[0])) if len(columns) == 1 else "(" + ", ".join(sql_string(str(v)) for v in r) + ")" for r in keys.rows
            ]
            return f"{target} IN ({', '.join(values)})"
        view = f"_cdp_erase_{uuid.uuid4().hex}"
        keys.frame.createOrReplaceTempView(view)
        self._views.append(view)
        return f"{target} IN (SELECT {', '.join(_quoted(c) for c in keys.frame.columns)} FROM {view})"


def any_of(*predicates: str | None) -> str | None:
    parts = [f"({p})" for p in predicates if p]
    return " OR ".join(parts) if parts else None


def delete_where(lake: Lake, layer: str, name: str, predicate: str | None) -> int:
    """Delete the rows matching ``predicate`` and return how many there were (no commit when none)."""
    if predicate is None:
        return 0
    matched = lake.read(layer, name).where(predicate).count()
    if matched:
        lake.delete(layer, name, predicate)
    log.info("%s.%s: %d row(s) deleted", layer, name, matched)
    return matched
