"""Data residency: rows of some countries are stored under their own lakehouse root."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig
from cdp_spark.errors import MissingColumnsError


def residency_split(df: DataFrame, country_col: str, cfg: CdpConfig) -> dict[str, DataFrame]:
    """``lakehouse root -> rows to store there``, by ``privacy.residency`` (ISO alpha-2 -> root).

    Countries without an entry, and rows without a country, go to ``paths.lakehouse``. ``country_col``
    must hold ISO alpha-2 codes (bronze's ``_country`` after ``cdp_spark.standardize.country_code``).
    Every root appears in the result, possibly with no rows, so writers can create its tables.
    """
    if country_col not in df.columns:
        raise MissingColumnsError([country_col], "residency_split input")
    country = F.upper(F.trim(F.col(f"`{country_col}`")))
    roots: dict[str, list[str]] = {}
    for code, root in sorted(cfg.privacy.residency.items()):
        roots.setdefault(root, []).append(code.upper())
    default = cfg.paths.lakehouse
    resident = [code for codes in roots.values() for code in codes]
    out = {root: df.where(country.isin(*codes)) for root, codes in roots.items() if root != default}
    stays = ~F.coalesce(country.isin(*resident), F.lit(False)) if resident else F.lit(True)
    home = df.where(stays)
    if default in roots:
        home = df.where(stays | country.isin(*roots[default]))
    out[default] = home
    return {root: part.select(*df.columns) for root, part in out.items()}
