"""No resurrection: erased identifiers are kept as keyed hashes in ``ops.suppression`` and raw
batches are split against it before they reach bronze.

``ops.suppression`` holds ``id_type, id_key, subject_hash, run_id, suppressed_at``: ``id_key`` is
the same HMAC as ``silver.identifiers.id_key`` (``keyed_hash("<id_type>:<standardized value>")``),
so the list holds no raw value and cannot be reversed without the pseudonymization secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import SourceConfig
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


def source_identifier_columns(src: SourceConfig, available: Sequence[str]) -> dict[str, str]:
    """Identifier type -> the column of a raw (bronze) row of ``src`` that holds it, for the types it has.

    A source names its fields its own way; ``src.columns`` maps source fields to canonical names
    (``{e_mail: email}``), so the canonical identifier type is looked up through it.
    """
    field_of = {canonical: name for name, canonical in src.columns.items()}
    present = set(available)
    return {t: f for t in ID_TYPES if (f := t if t in src.columns else field_of.get(t, t)) in present}


def suppress_source_rows(
    df: DataFrame, src: SourceConfig, *, key: bytes, suppressed: DataFrame, gmail_rule: bool, country_col: str = "_country"
) -> tuple[DataFrame, DataFrame] | None:
    """``(kept, suppressed)`` rows of a raw batch or bronze table of ``src`` (see :func:`apply_suppression`);
    None when the source carries no identifier column."""
    columns = source_identifier_columns(src, df.columns)
    if not columns:
        return None
    return apply_suppression(
        df, key=key, suppressed=suppressed, columns=columns, country_col=country_col if country_col in df.columns else None, gmail_rule=gmail_rule
    )


def source_identifier_keys(df: DataFrame, src: SourceConfig, *, key: bytes, gmail_rule: bool, country_col: str = "_country") -> DataFrame:
    """``_record_key, id_type, id_key``: the identifier keys of raw (bronze) rows of ``src``, standardized
    and hashed as silver keys them (``silver.identifiers.id_key``); a row carrying none gives none."""
    columns = source_identifier_columns(src, df.columns)
    country = F.col(f"`{country_col}`") if country_col in df.columns else None
    pairs = [
        F.struct(F.lit(t).alias("id_type"), id_key(t, standardized_value(t, F.col(f"`{c}`"), country, gmail_rule=gmail_rule), key).alias("id_key"))
        for t, c in sorted(columns.items())
    ]
    if not pairs:
        return df.sparkSession.createDataFrame([], "_record_key string, id_type string, id_key string")
    return (
        df.select("_record_key", F.explode(F.array(*pairs)).alias("_k"))
        .select("_record_key", "_k.id_type", "_k.id_key")
        .where(F.col("id_key").isNotNull())
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


# Candidate identifiers in free text: e-mail addresses, phone-like digit runs, and the words between
# delimiters of CSV/JSON lines (ids such as customer, loyalty, device or cookie ids).
_EMAIL_TOKEN = r"[^\s\"'<>(),;:\[\]{}|]+@[^\s\"'<>(),;:\[\]{}|]+"
_PHONE_TOKEN = r"\+?\d[\d ()./-]{5,}\d"
_WORD_SPLIT = r"[\s\"'<>,;:\[\]{}|=]+"
_TOKEN_MAX = 320  # longest candidate looked at (the longest valid e-mail address)


def apply_text_suppression(
    df: DataFrame,
    *,
    text_col: str,
    row_key: Sequence[str],
    key: bytes,
    suppressed: DataFrame,
    country: Column | None = None,
    gmail_rule: bool = True,
) -> tuple[DataFrame, DataFrame]:
    """Split rows of free text (e.g. quarantined raw lines that could not be parsed) into ``(kept, suppressed)``.

    A line that failed parsing has no columns to read identifiers from, so every candidate in
    ``text_col`` -- e-mail addresses, phone-like digit runs and the words between delimiters -- is
    standardized as each identifier type and hashed; the row is suppressed when any hash is on the
    list. This errs on the side of the erased subject: a line merely mentioning an erased
    identifier is kept out too (and counted). ``row_key`` columns identify a row (null-safe);
    ``country`` (a column of ``df`` or a literal) helps read national phone numbers.
    """
    missing = [c for c in (text_col, *row_key) if c not in df.columns]
    if missing:
        raise MissingColumnsError(missing, "apply_text_suppression input")
    if "id_key" not in suppressed.columns:
        raise MissingColumnsError(["id_key"], "apply_text_suppression suppressed list")
    keys = [F.col(f"`{c}`").alias(f"_sup_k{i}") for i, c in enumerate(row_key)]
    text = F.col(f"`{text_col}`")
    candidates = F.array_distinct(
        F.concat(
            F.regexp_extract_all(text, F.lit(_EMAIL_TOKEN), 0),
            F.regexp_extract_all(text, F.lit(_PHONE_TOKEN), 0),
            F.split(text, _WORD_SPLIT),
        )
    )
    tokens = (
        df.where(text.isNotNull())
        .select(*keys, F.lit(country).alias("_sup_country") if country is not None else F.lit(None).cast("string").alias("_sup_country"),
                F.explode(candidates).alias("_sup_token"))
        .where((F.length("_sup_token") >= 2) & (F.length("_sup_token") <= _TOKEN_MAX))
    )
    hashed = tokens.select(
        *[c for c in tokens.columns if c.startswith("_sup_k")],
        F.explode(
            F.array(*[id_key(t, standardized_value(t, F.col("_sup_token"), F.col("_sup_country"), gmail_rule=gmail_rule), key) for t in ID_TYPES])
        ).alias("id_key"),
    ).where(F.col("id_key").isNotNull())
    listed = F.broadcast(suppressed.select("id_key").where(F.col("id_key").isNotNull()).distinct())
    hits = hashed.join(listed, "id_key", "left_semi").drop("id_key").distinct()
    cond = None
    for i, c in enumerate(row_key):
        part = F.col(f"`{c}`").eqNullSafe(hits[f"_sup_k{i}"])
        cond = part if cond is None else cond & part
    kept = df.join(hits, cond, "left_anti")
    dropped = df.join(hits, cond, "left_semi")
    return kept, dropped
