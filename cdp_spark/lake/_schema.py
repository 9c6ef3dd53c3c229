"""Schema rules shared by both engines: Delta <-> Spark conversion, append-time merge, alignment.

Delta's schema serialisation is Spark's StructType JSON, so conversion is a JSON round-trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NullType,
    ShortType,
    StructField,
    StructType,
)

from cdp_spark.errors import MissingColumnsError, StorageError

_INTEGRAL_RANK = {ByteType: 1, ShortType: 2, IntegerType: 3, LongType: 4}


def to_delta_json(schema: StructType) -> str:
    return schema.json()


def from_delta_json(schema_json: str) -> StructType:
    return StructType.fromJson(json.loads(schema_json))


def _same_type(a: DataType, b: DataType) -> bool:
    """Equal ignoring nested nullability (containsNull, valueContainsNull, nested nullable)."""
    return a.simpleString() == b.simpleString()


def _widens_to(source: DataType, target: DataType) -> bool:
    """Whether values of ``source`` can be stored in a ``target`` column without loss."""
    if _same_type(source, target) or isinstance(source, NullType):
        return True
    src_rank, tgt_rank = _INTEGRAL_RANK.get(type(source)), _INTEGRAL_RANK.get(type(target))
    if src_rank and tgt_rank:
        return src_rank <= tgt_rank
    if isinstance(target, DoubleType):
        return isinstance(source, FloatType) or (src_rank is not None and src_rank <= 3)
    if isinstance(source, DecimalType) and isinstance(target, DecimalType):
        return target.scale >= source.scale and target.precision - target.scale >= source.precision - source.scale
    return False


def merge_schemas(table: StructType, incoming: StructType, where: str) -> tuple[StructType, list[StructField]]:
    """Table schema evolved with the incoming columns it lacks (appended at the end).

    Existing columns keep their type and nullability; an incoming column of a different type is
    accepted only if it widens losslessly to the table's type. Returns the merged schema and the
    new fields.
    """
    incoming_by_name = {f.name: f for f in incoming.fields}
    for field in table.fields:
        other = incoming_by_name.get(field.name)
        if other is not None and not _widens_to(other.dataType, field.dataType):
            raise StorageError(
                f"{where}: column {field.name!r} is {field.dataType.simpleString()} in the table but "
                f"{other.dataType.simpleString()} in the data; cast it in the job or overwrite the table to change its type"
            )
        if other is None and not field.nullable:
            raise MissingColumnsError([field.name], where=f"{where} (NOT NULL column absent from the data)")
    known = {f.name for f in table.fields}
    new_fields = [StructField(f.name, f.dataType, True, f.metadata) for f in incoming.fields if f.name not in known]
    for field in new_fields:
        if isinstance(field.dataType, NullType):
            raise StorageError(f"{where}: new column {field.name!r} has no type (void); cast it before writing")
    return StructType(list(table.fields) + new_fields), new_fields


def _fitted(df: DataFrame, field: StructField, where: str) -> Column:
    source = df.schema[field.name]
    col = F.col(f"`{field.name}`")
    if not _same_type(source.dataType, field.dataType):
        col = col.cast(field.dataType)
    if not field.nullable and source.nullable:
        # Checked while the executors write; no extra pass over the data.
        col = F.when(col.isNull(), F.raise_error(F.lit(f"{where}: NULL in NOT NULL column {field.name!r}"))).otherwise(col)
    return col.alias(field.name)


def align(df: DataFrame, target: StructType, where: str) -> DataFrame:
    """``df`` shaped as ``target``: its column order and types, nulls for columns it lacks."""
    present = set(df.columns)
    return df.select(
        *[
            _fitted(df, f, where) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
            for f in target.fields
        ]
    )


def require_columns(schema: StructType, columns: Sequence[str], where: str) -> None:
    missing = set(columns) - set(schema.fieldNames())
    if missing:
        raise MissingColumnsError(missing, where=where)
