"""Timestamps to UTC: honour explicit offsets, read naive wall-clock times in a source or country zone."""

from __future__ import annotations

import json
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.errors import ConfigError

# ISO-8601 date-time ending in an explicit offset: Z, UTC/GMT, +03, +0300, +03:00.
_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?\s*(Z|z|UTC|GMT|[+-]\d{2}(:?\d{2})?)$"

# One representative zone per country where pytz's first-listed zone is not where most people
# live (pytz lists e.g. America/Noronha first for Brazil).
_REPRESENTATIVE = {
    "US": "America/New_York", "CA": "America/Toronto", "BR": "America/Sao_Paulo", "MX": "America/Mexico_City",
    "RU": "Europe/Moscow", "AU": "Australia/Sydney", "AR": "America/Argentina/Buenos_Aires", "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty", "CN": "Asia/Shanghai", "CL": "America/Santiago", "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon", "EC": "America/Guayaquil", "MN": "Asia/Ulaanbaatar", "CD": "Africa/Kinshasa",
    "UA": "Europe/Kyiv", "NZ": "Pacific/Auckland", "DE": "Europe/Berlin", "MY": "Asia/Kuala_Lumpur",
}


@lru_cache(maxsize=1)
def country_timezones() -> dict[str, str]:
    """ISO alpha-2 → one IANA zone per country (pytz's zone.tab data, see ``_REPRESENTATIVE``)."""
    import pytz

    zones = {code.upper(): names[0] for code, names in pytz.country_timezones.items() if names}
    zones.update(_REPRESENTATIVE)
    return zones


def _zone_literal() -> Column:
    return F.from_json(F.lit(json.dumps(country_timezones())), "map<string,string>")


def country_timezone(country_col: Column) -> Column:
    """IANA time zone for an ISO alpha-2 country code, null when unknown.

    One zone per country: the country's only zone, or the zone of its largest population centre
    for multi-zone countries (US → America/New_York, BR → America/Sao_Paulo, RU → Europe/Moscow,
    ES → Europe/Madrid, not the Canaries). Good for local-time events from a country's shops or
    call centres; sources spanning zones should send offsets or a per-source zone instead.
    """
    return F.try_element_at(_zone_literal(), F.upper(F.trim(country_col.cast("string"))))


def _check_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"source_tz={zone!r} is not an IANA time zone; use a name such as 'Europe/Istanbul' or 'UTC'") from exc


def to_utc(ts_col: Column, *, source_tz: str | None = None, tz_col: Column | None = None) -> Column:
    """Parse an ISO-8601 string (or a naive timestamp) to a UTC ``timestamp``; null when unparseable.

    Values with an explicit offset (``2024-05-01T10:00:00+03:00``, ``...Z``, ``...+0300``) are exact
    instants: the offset wins over any zone argument. Naive values (``2024-05-01 10:00:00``, dates)
    are wall-clock times in ``tz_col`` (per row, e.g. :func:`country_timezone`), falling back to
    ``source_tz`` where ``tz_col`` is null, and UTC when neither is given. A row whose zone is
    null when no ``source_tz`` is given yields null, like an unparseable value, so the caller can
    quarantine it. Wall-clock times in a DST gap are moved forward by the gap (Java's rule).
    Requires the session time zone to be UTC (cdp_spark.session sets it).
    """
    if source_tz is not None:
        _check_zone(source_tz)
    text = F.trim(ts_col.cast("string"))
    instant = F.try_to_timestamp(text)
    if tz_col is None:
        zone = F.lit(source_tz or "UTC")
    else:
        zone = F.coalesce(tz_col, F.lit(source_tz)) if source_tz else tz_col
    return F.when(text.rlike(_WITH_OFFSET), instant).otherwise(F.to_utc_timestamp(instant, zone))
