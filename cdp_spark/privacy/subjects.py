"""Erasure subjects: parsing request lines and keying them as silver keys identifiers.

A subject is one of

* ``email:<address>``                      standardized like silver (NFKC, case, gmail rule)
* ``phone:<E.164 number>`` or ``phone:<CC>:<national number>`` (``phone:DE:0151 2345678``)
* ``national_id:<CC>:<id>``                 a national id is unique within its country only
* ``customer_id:``, ``loyalty_id:``, ``device_id:``, ``cookie_id:``, ``legacy_id:<value>``
* ``customer_uid:<uid>``                    a gold customer
* ``<source>:<record_id>``                   a source record (``crm_customers:C123``)

Identifier types win over source names; record ids may contain ``:``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.errors import CdpError
from cdp_spark.privacy._identifiers import ID_TYPES, id_key, standardized_value
from cdp_spark.privacy.pseudonymize import keyed_hash

log = logging.getLogger(__name__)

IDENTIFIER, CUSTOMER, RECORD = "identifier", "customer_uid", "record"


class ErasureRequestError(CdpError):
    """An erasure request names a subject that cannot be parsed or standardized."""


@dataclass(frozen=True)
class Subject:
    kind: str  # IDENTIFIER | CUSTOMER | RECORD
    value: str  # identifier value, customer uid or record id, as given
    id_type: str | None = None
    country: str | None = None  # phones in national format, national ids
    source: str | None = None


def parse_subject(text: str, *, sources: Collection[str], where: str = "subject") -> Subject:
    """Parse one subject (see the module docstring); raise :class:`ErasureRequestError` saying how to fix it."""
    prefix, sep, rest = text.strip().partition(":")
    rest = rest.strip()
    if not sep or not prefix or not rest:
        raise ErasureRequestError(f"{where}: expected '<type>:<value>' (email:, phone:, customer_uid:, <source>:<record_id>), got no ':' or an empty part")
    if prefix in ("phone", "national_id"):
        cc, sep2, number = rest.partition(":")
        if sep2 and len(cc) == 2 and cc.isalpha():
            return Subject(IDENTIFIER, number.strip(), prefix, cc.upper())
        if prefix == "national_id":
            raise ErasureRequestError(f"{where}: a national id is only unique within its country; write national_id:<CC>:<id> (national_id:DE:T22000129)")
        return Subject(IDENTIFIER, rest, "phone")
    if prefix in ID_TYPES:
        return Subject(IDENTIFIER, rest, prefix)
    if prefix == "customer_uid":
        return Subject(CUSTOMER, rest)
    if prefix in sources:
        return Subject(RECORD, rest, source=prefix)
    raise ErasureRequestError(
        f"{where}: unknown subject type {prefix!r}; use one of {', '.join((*ID_TYPES, 'customer_uid'))} or a source name ({', '.join(sorted(sources)) or 'none configured'})"
    )


def read_requests(path: str | Path) -> list[str]:
    """Subjects from a request file: one per line; blank lines and lines starting with ``#`` are skipped."""
    file = Path(path)
    if not file.is_file():
        raise ErasureRequestError(f"erasure request file not found: {file}")
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def subject_frame(spark: SparkSession, subjects: Sequence[Subject], *, key: bytes, gmail_rule: bool) -> DataFrame:
    """One row per subject: ``n, kind, id_type, id_key, customer_uid, source, record_id, subject_hash``.

    Identifier values are standardized and keyed exactly as silver keys them; ``subject_hash`` is
    the keyed hash of the standardized subject (``email:<norm>``, ``customer_uid:<uid>``,
    ``record:<source>:<id>``), the only form of the subject that is ever stored.
    """
    rows = [(n, s.kind, s.id_type, s.value, s.country, s.source) for n, s in enumerate(subjects)]
    df = spark.createDataFrame(rows, "n int, kind string, id_type string, value string, country string, source string")
    normalized = F.lit(None).cast("string")
    for id_type in sorted({s.id_type for s in subjects if s.id_type}):  # only the standardizers needed (phones start Python workers)
        normalized = F.when(F.col("id_type") == id_type, standardized_value(id_type, F.col("value"), F.col("country"), gmail_rule=gmail_rule)).otherwise(normalized)
    df = df.withColumn("norm", F.when(F.col("kind") == IDENTIFIER, normalized).otherwise(F.trim("value")))
    stored = (
        F.when(F.col("kind") == IDENTIFIER, F.concat_ws(":", "id_type", "norm"))
        .when(F.col("kind") == CUSTOMER, F.concat(F.lit("customer_uid:"), F.col("norm")))
        .otherwise(F.concat_ws(":", F.lit("record"), F.col("source"), F.col("norm")))
    )
    out = df.select(
        "n",
        "kind",
        "id_type",
        F.when(F.col("kind") == IDENTIFIER, id_key(F.col("id_type"), F.col("norm"), key)).alias("id_key"),
        F.when(F.col("kind") == CUSTOMER, F.col("norm")).alias("customer_uid"),
        "source",
        F.when(F.col("kind") == RECORD, F.col("norm")).alias("record_id"),
        F.when(F.col("norm").isNotNull(), keyed_hash(stored, key)).alias("subject_hash"),
    ).localCheckpoint()
    bad = [r["n"] for r in out.where(F.col("subject_hash").isNull()).select("n").orderBy("n").limit(20).collect()]
    if bad:
        kinds = {n: subjects[n].id_type or subjects[n].kind for n in bad}
        raise ErasureRequestError(
            "erasure subjects that do not standardize to a valid identifier (position: type): "
            + ", ".join(f"#{n + 1}: {t}" for n, t in kinds.items())
            + "; fix them (phones in national format need a country: phone:DE:0151...) and rerun; nothing was erased"
        )
    return out
