"""Column -> Column checks shared by every format: record key, event time, country, size."""

from __future__ import annotations

import re
from functools import lru_cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.ingest import _reasons as R

# Codes in common use that ISO 3166 reserves but does not assign (silver maps them).
_EXTRA_CODES = ("UK", "EL")
_NAME_LIKE = r"^[\p{L}\p{M}][\p{L}\p{M} .'’()&,-]*$"


@lru_cache(maxsize=1)
def country_codes() -> tuple[str, ...]:
    """Every ISO 3166 alpha-2 and alpha-3 code plus common reserved codes (UK, EL)."""
    import pycountry

    codes = {c.alpha_2 for c in pycountry.countries} | {c.alpha_3 for c in pycountry.countries}
    return tuple(sorted(codes | set(_EXTRA_CODES)))


def country_is_plausible(col: Column) -> Column:
    """False only for values nothing could resolve: unassigned 2/3-letter codes ("XX"), symbols ("??").

    Names and local spellings ("Deutschland", "Türkiye", "日本") pass: silver resolves them.
    Null or blank passes too (a missing country is silver's concern, not bronze's).
    """
    value = F.trim(col)
    return (
        F.when(value.isNull() | (value == ""), F.lit(True))
        .when(value.rlike(r"^[A-Za-z]{2,3}$"), F.upper(value).isin(list(country_codes())))
        .otherwise(value.rlike(_NAME_LIKE) & (F.length(value) >= 2))
    )


def event_time_parses(col: Column, timestamp_format: str | None) -> Column:
    """True when the raw value parses with the source's pattern or as ISO-8601 (null passes)."""
    iso = F.try_to_timestamp(col.cast("string"))
    parsed = iso if timestamp_format is None else F.coalesce(F.try_to_timestamp(col.cast("string"), F.lit(timestamp_format)), iso)
    return col.isNull() | parsed.isNotNull()


def record_reason(
    pre_reason: Column,
    *,
    key: Column,
    event_time: Column | None,
    timestamp_format: str | None,
    country: Column | None,
) -> Column:
    """The first failing check's reason, or null for a good record.

    ``pre_reason`` carries the format-level verdict (encoding, size, parse); the rest are the
    checks every source gets: key present and not blank, event time parseable, country plausible.
    """
    reason = F.when(pre_reason.isNotNull(), pre_reason)
    reason = reason.when(key.isNull(), F.lit(R.MISSING_KEY)).when(F.trim(key) == "", F.lit(R.BLANK_KEY))
    if event_time is not None:
        reason = reason.when(~event_time_parses(event_time, timestamp_format), F.lit(R.BAD_EVENT_TIME))
    if country is not None:
        reason = reason.when(~country_is_plausible(country), F.lit(R.BAD_COUNTRY))
    return reason


def delta_safe_name(name: str) -> str:
    """A column name Delta accepts without column mapping (no spaces, ,;{}()=, newlines or dots)."""
    cleaned = re.sub(r"[ ,;{}()\n\t=.`]", "_", name.strip())
    return cleaned or "_blank_"
