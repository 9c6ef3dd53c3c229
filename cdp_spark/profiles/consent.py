"""Consent state per customer and purpose, from ``silver.consents`` and the customer's identifiers.

A consent event names a subject (``subject_type`` ``customer_id`` or ``email`` and ``subject_key``,
the same keyed hash as ``silver.identifiers.id_key``). A customer's state for a purpose is the
latest *current* event (``is_current``) over all of the customer's subjects; at the same instant
a revocation wins over a grant. ``True`` granted, ``False`` revoked, ``NULL`` no record — and
no record means *not allowed* wherever consent gates an action.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.errors import MissingColumnsError

PURPOSES: tuple[str, ...] = ("marketing_email", "sms", "ads", "analytics", "profiling")


def consent_column(purpose: str) -> str:
    """Name of the profile column holding the consent state for ``purpose``."""
    return f"consent_{purpose}"


def customer_subjects(identifiers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """``customer_uid, id_type, id_key``: every distinct identifier of every customer."""
    return identifiers.join(identity_map, ["source", "record_id"]).select("customer_uid", "id_type", "id_key").distinct()


def consent_state(consents: DataFrame, subjects: DataFrame) -> DataFrame:
    """``customer_uid, consent_<purpose>... (boolean)`` for customers with at least one current consent event."""
    missing = {"subject_type", "subject_key", "purpose", "granted", "valid_from", "is_current"} - set(consents.columns)
    if missing:
        raise MissingColumnsError(missing, "silver.consents")
    current = consents.where(F.col("is_current")).select("subject_type", "subject_key", "purpose", "granted", "valid_from")
    joined = current.join(
        subjects, (current["subject_type"] == subjects["id_type"]) & (current["subject_key"] == subjects["id_key"])
    ).select("customer_uid", "purpose", "granted", "valid_from")
    # Latest event wins; at the same instant ``NOT granted`` (revoked) sorts higher and wins.
    aggs = [
        F.max_by(F.col("granted"), F.when(F.col("purpose") == p, F.struct(F.col("valid_from"), ~F.col("granted")))).alias(consent_column(p))
        for p in PURPOSES
    ]
    return joined.groupBy("customer_uid").agg(*aggs).select("customer_uid", *[consent_column(p) for p in PURPOSES])
