"""No resurrection: erased identifiers are kept as keyed hashes in ``ops.suppression`` and raw
batches are split against it before they reach bronze.

``ops.suppression`` holds ``id_type, id_key, subject_hash, run_id, suppressed_at``: ``id_key`` is
the same HMAC as ``silver.identifiers.id_key`` (``keyed_hash("<id_type>:<standardized value>")``),
so the list holds no raw value and cannot be reversed without the pseudonymization secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.errors import MissingColumnsError
from cdp_spark.privacy._identifiers import ID_TYPES, id_key, standardized_value

log = logging.getLogger(__name__)

SUPPRESSION_TABLE = ("ops", "suppression")
SUPPRESSION_SCHEMA = T.StructType(
    [
        T.StructField("id_type", T.StringType(), False),
        T.StructField("id_key", T.StringType(), False),
        T.StructField("subject_hash", T.StringType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("suppressed_at", T.TimestampType(), False),
    ]
)


def apply_suppression(
    df: DataFrame,
    *,
    key: bytes,
    suppressed: DataFrame,
    columns: Mapping[str, str],
    country_col: str | None,
    gmail_rule: bool = True,
) -> tuple[DataFrame, DataFrame]:
    """Split a RAW batch into ``(kept, suppressed)`` rows, both with ``df``'s columns.

    ``columns`` maps identifier type (``email``, ``phone``, ``customer_id``, ``loyalty_id``,
    ``device_id``, ``cookie_id``, ``legacy_id``) to the raw column holding it; each is
    standardized as silver does (``gmail_rule`` = ``silver.gmail_normalization``; phones read
    national numbers with ``country_col``), hashed with ``key`` and looked up in ``suppressed``
    (a DataFrame with ``id_key``, e.g. ``ops.suppression``). A row is suppressed when any of its
    identifiers is. The list is small (one row per erased identifier), so each lookup is a
    broadcast join. Both outputs re-evaluate ``df``: cache it when it is expensive.
    """
    unknown = sorted(set(columns) - set(ID_TYPES))
    if unknown:
        raise ValueError(f"apply_suppression: unknown identifier type(s) {unknown}; use some of {', '.join(ID_TYPES)}")
    missing = [c for c in (*columns.values(), *([country_col] if country_col else [])) if c not in df.columns]
    if missing:
        raise MissingColumnsError(missing, "apply_suppression input batch")
    if "id_key" not in suppressed.columns:
        raise MissingColumnsError(["id_key"], "apply_suppression suppressed list")
    original = df.columns
    listed = F.broadcast(suppressed.select("id_key").where(F.col("id_key").isNotNull()).distinct())
    country = F.col(f"`{country_col}`") if country_col else None
    flagged = df
    hits = []
    for n, (id_type, column) in enumerate(sorted(columns.items())):
        hashed, hit = f"_sup_key_{n}", f"_sup_hit_{n}"
        value = standardized_value(id_type, F.col(f"`{column}`"), country, gmail_rule=gmail_rule)
        flagged = flagged.withColumn(hashed, id_key(id_type, value, key)).join(
            listed.select(F.col("id_key").alias(hashed), F.lit(True).alias(hit)), hashed, "left"
        )
        hits.append(F.coalesce(F.col(hit), F.lit(False)))
    is_suppressed = F.lit(False)
    for hit_col in hits:
        is_suppressed = is_suppressed | hit_col
    flagged = flagged.withColumn("_suppressed", is_suppressed)
    kept = flagged.where(~F.col("_suppressed")).select(*original)
    dropped = flagged.where(F.col("_suppressed")).select(*original)
    return kept, dropped
