"""Parquet sources: read file by file (each file's own schema), keep types, rescue type conflicts."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.ingest import _reasons as R
from cdp_spark.ingest._checks import delta_safe_name
from cdp_spark.ingest._landing import decoded_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftEvent:
    """A column the batch adds to the table or a value type it cannot store (rescued)."""

    file_path: str
    column: str
    old_type: str | None
    new_type: str
    action: str  # "added_column" | "type_conflict_rescued"


@dataclass(frozen=True)
class ParquetBatch:
    records: DataFrame | None  # file_path, line, value, <typed source columns>, rescued; None when no file is readable
    columns: tuple[str, ...]  # source columns in table order
    drift: tuple[DriftEvent, ...]
    unreadable: dict[str, str]  # path -> file-level quarantine reason


def _root_cause(exc: Exception) -> str:
    """The innermost JVM cause of a read failure (one line), else the first line of the message."""
    text = str(exc)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:300]


def read_parquet_files(
    spark: SparkSession, paths: Sequence[str], baseline: T.StructType | None, reserved: frozenset[str]
) -> ParquetBatch:
    """Read each file with its own schema and shape all of them to one table schema.

    The table schema is ``baseline`` (the existing table's source columns) or, for a new table,
    the first readable file's; later columns are added (drift ``added_column``). A value whose type
    differs from its column's goes to ``rescued`` (a JSON object) and the column is null there
    (drift ``type_conflict_rescued``). Names colliding with ``reserved`` (metadata) are rescued too.
    """
    frames: list[tuple[str, DataFrame]] = []
    unreadable: dict[str, str] = {}
    for path in paths:
        try:
            frames.append((path, spark.read.parquet(path)))
        except Exception as exc:  # Spark raises several types for a corrupt footer; all mean "unreadable"
            cause = _root_cause(exc)
            unreadable[path] = f"{R.CORRUPT_PARQUET}: {cause}"
            log.warning("parquet file %s is unreadable, quarantined: %s", path, cause)
    target: dict[str, T.DataType] = {f.name: f.dataType for f in baseline.fields} if baseline is not None else {}
    has_table = baseline is not None
    drift: list[DriftEvent] = []
    shaped: list[DataFrame] = []
    for index, (path, df) in enumerate(frames):
        keep, rescue = [], []
        for field in df.schema.fields:
            name = delta_safe_name(field.name)
            if name in reserved or name.lower() in {k.lower() for k, _ in keep}:
                rescue.append(field.name)
                continue
            known = target.get(name)
            if known is None:
                target[name] = field.dataType
                if has_table or index > 0:
                    drift.append(DriftEvent(path, name, None, field.dataType.simpleString(), "added_column"))
            elif known.simpleString() != field.dataType.simpleString():
                drift.append(DriftEvent(path, name, known.simpleString(), field.dataType.simpleString(), "type_conflict_rescued"))
                rescue.append(field.name)
                continue
            keep.append((name, field.name))
        kept = dict(keep)
        rescued = F.to_json(F.struct(*[F.col(f"`{c}`") for c in rescue])) if rescue else F.lit(None).cast("string")
        shaped.append(
            df.select(
                decoded_path(F.col("_metadata.file_path")).alias("file_path"),
                F.col("_metadata.row_index").alias("line"),
                F.to_json(F.struct(*[F.col(f"`{f.name}`") for f in df.schema.fields])).alias("value"),
                rescued.alias("rescued"),
                *[F.col(f"`{kept[n]}`").alias(n) if n in kept else F.lit(None).cast(t).alias(n) for n, t in target.items()],
            )
        )
    if not shaped:
        return ParquetBatch(None, tuple(target), tuple(drift), unreadable)
    # Frames shaped before a later file added a column lack it: unionByName fills nulls.
    records = shaped[0]
    for frame in shaped[1:]:
        records = records.unionByName(frame, allowMissingColumns=True)
    return ParquetBatch(records, tuple(target), tuple(drift), unreadable)
