"""PII scan: raw emails and phone numbers where only pseudonyms should be (gold and export files)."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.ops import lake_for
from cdp_spark.privacy import _exports

log = logging.getLogger(__name__)

# Java regexes (Spark ``rlike``), searched anywhere in the value.
EMAIL_PATTERN = r"[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(\.[\p{L}\p{N}-]+)*\.\p{L}{2,}"
# E.164 (``+4915112345678``), ``00`` international, or a national number starting with 0 in
# groups (``0532 123 45 67``) of at least 9 digits. The lookarounds stop matches inside longer
# words and ids (``we-0027724096783969``), so a digit run inside a hex digest (always next to a-f
# letters) never matches; neither do dates, plain integers not starting with 0, or 8-digit
# postcodes with a leading 0 (Brazil's ``00197146``), nor the fraction of a decimal number
# (``-931.0552534945732`` in a JSON of fitted model parameters).
PHONE_PATTERN = (
    r"(?<![\w+\-])(?<![0-9]\.)(\+[1-9][0-9]{7,14}|00[1-9][0-9]{7,13}"
    r"|0(?=(?:[ ./-]?[0-9]){8})[0-9]{2,4}[ ./-]?[0-9]{3,4}[ .-]?[0-9]{2,4}([ .-]?[0-9]{2})?)(?![\w])"
)


def pii_counts(df: DataFrame) -> dict[str, tuple[int, int]]:
    """``column -> (values like emails, values like phones)`` over string columns (nested ones as JSON), one pass."""
    texts = {
        f.name: F.col(f"`{f.name}`") if isinstance(f.dataType, T.StringType) else F.to_json(F.col(f"`{f.name}`"))
        for f in df.schema.fields
        if isinstance(f.dataType, (T.StringType, T.ArrayType, T.MapType, T.StructType))
    }
    if not texts:
        return {}
    aggs = []
    for n, text in enumerate(texts.values()):
        aggs.append(F.count_if(text.rlike(EMAIL_PATTERN)).alias(f"e{n}"))
        aggs.append(F.count_if(text.rlike(PHONE_PATTERN)).alias(f"p{n}"))
    row = df.agg(*aggs).first()
    return {name: (int(row[f"e{n}"]), int(row[f"p{n}"])) for n, name in enumerate(texts)}


def _findings(label: str, counts: dict[str, tuple[int, int]]) -> list[str]:
    out = []
    for column, (emails, phones) in counts.items():
        if emails:
            out.append(f"{label}.{column}: {emails} values look like emails")
        if phones:
            out.append(f"{label}.{column}: {phones} values look like phone numbers")
    return out


def scan_for_raw_pii(spark: SparkSession, cfg: CdpConfig) -> list[str]:
    """Findings such as ``"gold.customer_profile.note: 3 values look like emails"`` for every string
    column of every gold table and every export data file; empty when nothing looks like raw PII."""
    findings: list[str] = []
    lake = lake_for(spark, cfg)
    for name in lake.tables("gold"):
        findings += _findings(f"gold.{name}", pii_counts(lake.read("gold", name)))
    root = cfg.paths.exports.rstrip("/")
    for run in _exports.export_runs(cfg.paths.exports, marker=cfg.privacy.delivered_marker):
        for path in _exports.data_paths(run):
            fmt = run.manifest.get("format", "csv")
            reader = spark.read.option("header", "true").option("escape", '"') if fmt == "csv" else spark.read
            findings += _findings(f"exports{path[len(root):]}", pii_counts(reader.format(fmt).load(path)))
    log.info("PII scan: %d finding(s)", len(findings))
    return findings
