"""Phone standardization to E.164 with Google's libphonenumber rules (``phonenumbers``)."""

from __future__ import annotations

import unicodedata

import pandas as pd
from pyspark.sql import Column
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType, StructField, StructType

_RESULT_SCHEMA = StructType([StructField("value", StringType()), StructField("reason", StringType())])


def _parse_one(raw: str | None, region: str | None) -> tuple[str | None, str | None]:
    import phonenumbers
    from phonenumbers import NumberParseException, ValidationResult

    if raw is None or not raw.strip():
        return None, "missing"
    text = unicodedata.normalize("NFKC", raw).strip()
    region = region.strip().upper() if isinstance(region, str) and region.strip() else None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, {
            NumberParseException.INVALID_COUNTRY_CODE: "no country code and no record country" if region is None else "invalid country code",
            NumberParseException.NOT_A_NUMBER: "not a number",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
            NumberParseException.TOO_SHORT_NSN: "too short",
            NumberParseException.TOO_LONG: "too long",
        }.get(exc.error_type, "not a number")
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        return None, {
            ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
            ValidationResult.TOO_SHORT: "too short",
            ValidationResult.TOO_LONG: "too long",
            ValidationResult.INVALID_LENGTH: "invalid length",
            ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number without area code",
        }.get(possible, "invalid length")
    if not phonenumbers.is_valid_number(number):
        return None, "invalid number"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


# phonenumbers is a Python library (no JVM equivalent in Spark), so this has to be a pandas UDF.
@pandas_udf(_RESULT_SCHEMA)  # type: ignore[call-overload]
def _phone_udf(raw: pd.Series, country: pd.Series) -> pd.DataFrame:
    cache: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}
    out = []
    for key in zip(raw.where(raw.notna(), None), country.where(country.notna(), None)):
        if key not in cache:
            cache[key] = _parse_one(*key)
        out.append(cache[key])
    return pd.DataFrame(out, columns=["value", "reason"], dtype=object)


def standardize_phone(col: Column, country_col: Column) -> Column:
    """Standardize a phone number to ``struct<value: string, reason: string>`` with ``value`` in E.164.

    National numbers (``0532 123 45 67``) are read with the record's country (ISO alpha-2, e.g. from
    :func:`country_code`) as the default region; international ones (``+90…``, ``0090…`` with a
    region whose exit code is 00) keep their own country code. Input is NFKC-normalized first, so
    full-width digits and ``＋`` work (``０９０-１２３４-５６７８`` with JP → ``+819012345678``).
    Extensions are dropped (E.164 has none). Parsing is cached per Arrow batch, so repeated
    values (shared office lines, placeholder numbers) are parsed once.

    ``value`` is null whenever ``reason`` is set. Reasons: ``missing``, ``not a number``,
    ``no country code and no record country``, ``invalid country code``, ``too short``,
    ``too long``, ``invalid length``, ``local number without area code``, ``invalid number`` (right length but not an allocated range
    for that country, e.g. ``0000000000``).
    """
    return _phone_udf(col.cast("string"), country_col.cast("string"))
