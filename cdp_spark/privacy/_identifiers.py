"""Identifier values standardized exactly as silver standardizes them, and their keyed hashes (private)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.privacy.pseudonymize import keyed_hash

# The identifier types silver keys in ``silver.identifiers`` (``cdp_spark.pipeline.silver.identifier_rows``).
ID_TYPES: tuple[str, ...] = ("customer_id", "email", "phone", "loyalty_id", "device_id", "cookie_id", "legacy_id", "national_id")
ANONYMOUS_TYPES: tuple[str, ...] = ("cookie_id", "device_id")


def standardized_value(id_type: str, raw: Column, country: Column | None, *, gmail_rule: bool) -> Column:
    """The value silver hashes for ``id_type`` (NULL when it would not be an identifier).

    ``country`` is the record's country as it arrives (name or code); phones without a country
    code need it, as in silver, and a national id is keyed with it (``DE:T22000129``).
    """
    from cdp_spark.standardize import country_code, standardize_email, standardize_phone

    text = raw.cast("string")
    if id_type == "email":
        return standardize_email(text, gmail_rule=gmail_rule).getField("value")
    if id_type == "phone":
        region = country_code(country) if country is not None else F.lit(None).cast("string")
        return standardize_phone(text, region).getField("value")
    if id_type == "loyalty_id":
        value = F.upper(F.trim(text))
    elif id_type in ANONYMOUS_TYPES:
        value = F.lower(F.trim(text))
    elif id_type in ("customer_id", "legacy_id"):
        value = F.trim(text)
    elif id_type == "national_id":
        digits = F.upper(F.regexp_replace(text, "[^0-9A-Za-z]", ""))
        region = country_code(country) if country is not None else F.lit(None).cast("string")
        return F.when(F.length(digits) > 0, F.concat_ws(":", region, digits))  # concat_ws skips a null country, as silver does
    else:
        raise ValueError(f"unknown identifier type {id_type!r}; use one of {', '.join(ID_TYPES)}")
    return F.when(value != "", value)


def id_key(id_type: str | Column, value: Column, key: bytes) -> Column:
    """``keyed_hash("<id_type>:<value>")``: ``silver.identifiers.id_key`` and ``silver.consents.subject_key``."""
    type_col = F.lit(id_type) if isinstance(id_type, str) else id_type
    return keyed_hash(F.concat(type_col, F.lit(":"), value), key)
