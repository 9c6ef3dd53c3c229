"""Amounts to a reporting currency with the latest FX rate on or before each record's date."""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.errors import ConfigError, MissingColumnsError

FX_COLUMNS = ("date", "currency", "rate_to_eur")
_P = "__cdp_fx_"  # prefix of temporary columns, dropped by the final select


def _daily_rates(fx: DataFrame, max_staleness_days: int) -> DataFrame:
    """One row per currency and day a rate is valid: the rate published that day or the latest
    before it, for at most ``max_staleness_days`` after publication. Small (currencies × days),
    so the as-of lookup becomes a broadcast equi-join instead of a range join."""
    rates = (
        fx.select(
            F.upper(F.trim(F.col("currency"))).alias("currency"),
            F.to_date(F.col("date")).alias("date"),
            F.col("rate_to_eur").cast("double").alias("rate"),
        )
        .where(F.col("currency").isNotNull() & F.col("date").isNotNull() & (F.col("rate") > 0))
        # Two rates for one currency and day would duplicate rows downstream; keep one (their mean).
        .groupBy("currency", "date")
        .agg(F.avg("rate").alias("rate"))
    )
    next_date = F.lead("date").over(Window.partitionBy("currency").orderBy("date"))
    last_day = F.least(F.date_sub(next_date, 1), F.date_add(F.col("date"), max_staleness_days))  # least skips null
    return rates.withColumn("last_day", last_day).select(
        "currency", F.explode(F.sequence(F.col("date"), F.col("last_day"))).alias("day"), "rate"
    )


def convert_currency(
    df: DataFrame,
    fx: DataFrame,
    *,
    amount_col: str,
    currency_col: str,
    date_col: str,
    reporting_currency: str,
    out_col: str = "amount_reporting",
    max_staleness_days: int = 366,
) -> DataFrame:
    """Add ``out_col`` (decimal(18,2), the amount in ``reporting_currency``) and ``{out_col}_reason``.

    ``fx`` has ``date, currency, rate_to_eur`` (EUR per 1 unit of the currency, as the generator
    writes it); EUR itself is 1 whether listed or not. The rate used is the latest one on or before
    the record's date, for both the record's currency and the reporting currency (cross rate:
    ``amount × rate_to_eur[currency] / rate_to_eur[reporting]``), and at most
    ``max_staleness_days`` old. Amounts already in the reporting currency are kept as they are.

    Where no conversion is possible ``out_col`` is null and the reason says why: ``missing
    amount``, ``missing currency``, ``missing date``, ``no fx rate for USD on or before
    2024-01-31`` or ``no fx rate for reporting currency GBP on or before 2024-01-31``. Every input
    column is kept (amount and currency included).
    """
    reporting = reporting_currency.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", reporting):
        raise ConfigError(f"reporting_currency={reporting_currency!r} is not an ISO 4217 code such as 'EUR'")
    if max_staleness_days < 0:
        raise ConfigError(f"max_staleness_days={max_staleness_days} must be >= 0")
    reason_col = f"{out_col}_reason"
    missing = {amount_col, currency_col, date_col} - set(df.columns)
    if missing:
        raise MissingColumnsError(missing, where="convert_currency input")
    missing_fx = set(FX_COLUMNS) - set(fx.columns)
    if missing_fx:
        raise MissingColumnsError(missing_fx, where="convert_currency fx table")
    clash = {out_col, reason_col} & set(df.columns)
    if clash:
        raise ConfigError(f"convert_currency: output column(s) {sorted(clash)} already exist in the input; pass another out_col")

    daily = _daily_rates(fx, max_staleness_days)
    source = daily.select(F.col("currency").alias(f"{_P}cur"), F.col("day").alias(f"{_P}day"), F.col("rate").alias(f"{_P}src"))
    target = daily.where(F.col("currency") == reporting).select(F.col("day").alias(f"{_P}rday"), F.col("rate").alias(f"{_P}rep"))

    cur = F.col(f"{_P}row_cur")
    day = F.col(f"{_P}row_day")
    rows = df.withColumns({f"{_P}row_cur": F.upper(F.trim(F.col(currency_col))), f"{_P}row_day": F.to_date(F.col(date_col))})
    joined = rows.join(F.broadcast(source), (cur == F.col(f"{_P}cur")) & (day == F.col(f"{_P}day")), "left").join(
        F.broadcast(target), day == F.col(f"{_P}rday"), "left"
    )

    src_rate: Column = F.when(cur == "EUR", F.lit(1.0)).otherwise(F.col(f"{_P}src"))
    rep_rate: Column = F.lit(1.0) if reporting == "EUR" else F.col(f"{_P}rep")
    factor = F.when(cur == reporting, F.lit(1.0)).otherwise(src_rate / rep_rate)
    amount = F.col(amount_col)
    reason = (
        F.when(amount.isNull(), F.lit("missing amount"))
        .when(cur.isNull() | (cur == ""), F.lit("missing currency"))
        .when(day.isNull(), F.lit("missing date"))
        .when((cur != reporting) & src_rate.isNull(), F.concat(F.lit("no fx rate for "), cur, F.lit(" on or before "), day.cast("string")))
        .when(
            (cur != reporting) & rep_rate.isNull(),
            F.concat(F.lit(f"no fx rate for reporting currency {reporting} on or before "), day.cast("string")),
        )
    )
    converted = F.round(amount.cast("decimal(18,4)") * factor.cast("decimal(18,10)"), 2).cast("decimal(18,2)")
    return joined.select(*[F.col(c) for c in df.columns], F.when(reason.isNull(), converted).alias(out_col), reason.alias(reason_col))
