"""CLV models against their oracles: the published CDNOW fits and the lifetimes package."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from cdp_spark.errors import CdpError, MissingColumnsError
from cdp_spark.models.clv import (
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    predict_clv,
    probability_alive,
    rfm_summary,
)

# Fader, Hardie & Lee (2005), BG/NBD on the CDNOW cohort (weeks); Fader & Hardie (2013), Gamma-Gamma.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def _lifetimes_csv(name: str, **kwargs) -> pd.DataFrame:
    with importlib.resources.as_file(importlib.resources.files("lifetimes") / "datasets" / name) as path:
        return pd.read_csv(path, **kwargs)


def _assert_within(fitted: dict, published: dict, rel: float) -> None:
    for name, value in published.items():
        assert fitted[name] == pytest.approx(value, rel=rel), f"{name}: fitted {fitted[name]:.4f} vs published {value}"


# --------------------------------------------------------------------------- CDNOW reproduction


def test_bgnbd_fit_from_spark_reproduces_published_cdnow_parameters(spark):
    summary = spark.createDataFrame(_lifetimes_csv("cdnow_customers_summary.csv"))

    fit = fit_bgnbd(summary)

    _assert_within(fit, PUBLISHED_BGNBD, rel=0.01)
    assert fit["log_likelihood"] == pytest.approx(PUBLISHED_BGNBD_LL, abs=0.05)
    assert (fit["n_customers"], fit["converged"]) == (2357, True)


def test_gamma_gamma_fit_from_spark_reproduces_published_cdnow_parameters(spark):
    cdnow = _lifetimes_csv("cdnow_customers_summary_with_transactions.csv")
    summary = spark.createDataFrame(cdnow.rename(columns={"x": "frequency", "zbar": "monetary_value"}))

    fit = fit_gamma_gamma(summary)

    _assert_within(fit, PUBLISHED_GG, rel=0.01)
    assert (fit["n_customers"], fit["n_excluded"], fit["converged"]) == (946, 0, True)


@pytest.mark.slow
def test_cdnow_transactions_through_rfm_summary_reproduce_published_parameters(spark):
    """End to end: the 2,357-customer CDNOW sample's 6,919 transactions, daily periods, 39-week calibration."""
    tx = pd.read_csv(
        importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "amount"],
        dtype={"date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d").dt.date
    transactions = spark.createDataFrame(tx[["customer_id", "date", "amount"]])

    summary = rfm_summary(
        transactions, customer_col="customer_id", timestamp_col="date", amount_col="amount", observation_end="1997-09-30", freq="D"
    )
    bgnbd = fit_bgnbd(summary)
    gg = fit_gamma_gamma(summary)

    in_weeks = {**bgnbd, "alpha": bgnbd["alpha"] / 7}
    _assert_within(in_weeks, PUBLISHED_BGNBD, rel=0.01)
    _assert_within(gg, PUBLISHED_GG, rel=0.01)


def test_fits_equal_lifetimes_fitters_with_a_penalizer():
    summary = _lifetimes_csv("cdnow_customers_summary_with_transactions.csv").rename(
        columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )
    repeat = summary[summary["frequency"] > 0]
    bgf = BetaGeoFitter(penalizer_coef=0.01).fit(summary["frequency"], summary["recency"], summary["T"])
    ggf = GammaGammaFitter(penalizer_coef=0.01).fit(repeat["frequency"], repeat["monetary_value"])

    bgnbd = fit_bgnbd(summary, penalizer=0.01)
    gg = fit_gamma_gamma(summary, penalizer=0.01)

    _assert_within(bgnbd, bgf.params_.to_dict(), rel=1e-5)
    _assert_within(gg, ggf.params_.to_dict(), rel=1e-5)


# --------------------------------------------------------------------------- rfm_summary

# Several purchases in one day and in one week, Sunday/Monday week boundaries, a single-purchase
# customer, purchases on the observation-end day, after it, and a customer seen only after it.
TRANSACTIONS = [
    ("c1", "2024-01-01 09:00:00", 10.0),
    ("c1", "2024-01-01 18:30:00", 5.5),
    ("c1", "2024-01-03 12:00:00", 7.25),
    ("c1", "2024-01-09 08:00:00", 20.0),
    ("c1", "2024-02-20 23:59:59", 3.0),
    ("c1", "2024-04-15 10:00:00", 100.0),
    ("c2", "2024-01-07 23:30:00", 12.0),
    ("c2", "2024-01-08 00:10:00", 8.0),
    ("c3", "2024-02-01 14:00:00", 30.0),
    ("c4", "2024-03-31 10:00:00", 15.0),
    ("c4", "2024-03-31 20:00:00", 1.0),
    ("c5", "2024-03-26 07:00:00", 4.0),
    ("c5", "2024-03-29 07:00:00", 6.0),
    ("c5", "2024-04-02 07:00:00", 50.0),
    ("c6", "2024-04-03 07:00:00", 9.0),
]
OBSERVATION_END = "2024-03-31"
SUMMARY_SCHEMA = StructType(
    [
        StructField("customer_id", StringType()),
        StructField("frequency", LongType()),
        StructField("recency", DoubleType()),
        StructField("T", DoubleType()),
        StructField("monetary_value", DoubleType()),
    ]
)


def _transactions(spark):
    return spark.createDataFrame(TRANSACTIONS, "customer_id string, ts string, amount double").withColumn("ts", F.to_timestamp("ts"))


def _lifetimes_summary(spark, freq: str, with_amount: bool):
    tx = pd.DataFrame(TRANSACTIONS, columns=["customer_id", "ts", "amount"])
    tx["ts"] = pd.to_datetime(tx["ts"])
    expected = summary_data_from_transaction_data(
        tx, "customer_id", "ts", monetary_value_col="amount" if with_amount else None, observation_period_end=OBSERVATION_END, freq=freq
    ).reset_index()
    expected["frequency"] = expected["frequency"].astype("int64")
    schema = SUMMARY_SCHEMA if with_amount else StructType(SUMMARY_SCHEMA.fields[:4])
    return spark.createDataFrame([tuple(row) for row in expected.itertuples(index=False)], schema)


@pytest.mark.parametrize("freq", ["D", "W"])
@pytest.mark.parametrize("with_amount", [True, False], ids=["amount", "no_amount"])
def test_rfm_summary_equals_lifetimes_summary(spark, freq, with_amount):
    actual = rfm_summary(
        _transactions(spark),
        customer_col="customer_id",
        timestamp_col="ts",
        amount_col="amount" if with_amount else None,
        observation_end=OBSERVATION_END,
        freq=freq,
    )

    assertDataFrameEqual(actual, _lifetimes_summary(spark, freq, with_amount), rtol=1e-12)


def test_rfm_summary_monthly_periods_are_calendar_months(spark):
    # lifetimes cannot do freq="M" with pandas 2, so the expectation is written out.
    actual = rfm_summary(
        _transactions(spark), customer_col="customer_id", timestamp_col="ts", amount_col="amount", observation_end=OBSERVATION_END, freq="M"
    )

    expected = spark.createDataFrame(
        [
            ("c1", 1, 1.0, 2.0, 3.0),  # January (42.75 in 4 purchases) then February (3.0)
            ("c2", 0, 0.0, 2.0, 0.0),
            ("c3", 0, 0.0, 1.0, 0.0),
            ("c4", 0, 0.0, 0.0, 0.0),
            ("c5", 0, 0.0, 0.0, 0.0),
        ],
        SUMMARY_SCHEMA,
    )
    assertDataFrameEqual(actual, expected, rtol=1e-12)


def test_rfm_summary_names_the_missing_column(spark):
    with pytest.raises(MissingColumnsError, match="amount_eur"):
        rfm_summary(
            _transactions(spark), customer_col="customer_id", timestamp_col="ts", amount_col="amount_eur", observation_end=OBSERVATION_END
        )


# --------------------------------------------------------------------------- scoring vs lifetimes

# CDNOW's weekly estimates with alpha in days, since the customers below are summarised in days.
BGNBD_DAYS = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["new", "one_repeat", "recent", "loyal", "lapsed", "last_today"],
        "frequency": [0, 1, 3, 12, 40, 2],
        "recency": [0.0, 5.0, 40.0, 300.0, 200.0, 100.0],
        "T": [30.0, 60.0, 50.0, 310.0, 365.0, 100.0],
        "monetary_value": [0.0, 12.5, 20.0, 55.1, 9.99, 30.0],
    }
)


def _lifetimes_fitters() -> tuple[BetaGeoFitter, GammaGammaFitter]:
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(BGNBD_DAYS)
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(PUBLISHED_GG)
    return bgf, ggf


@pytest.mark.parametrize("months,discount_rate", [(3, 0.0), (12, 0.01)])
def test_predictions_equal_lifetimes_fitters(spark, months, discount_rate):
    bgf, ggf = _lifetimes_fitters()
    c = CUSTOMERS
    horizon = 30.0 * months

    scored = predict_clv(spark.createDataFrame(c), BGNBD_DAYS, PUBLISHED_GG, horizon=horizon, discount_rate=discount_rate, step=30.0)
    actual = scored.toPandas().set_index("customer_id").loc[c["customer_id"]]

    np.testing.assert_allclose(actual["expected_purchases"], bgf.predict(horizon, c["frequency"], c["recency"], c["T"]), rtol=1e-6)
    np.testing.assert_allclose(actual["p_alive"], bgf.conditional_probability_alive(c["frequency"], c["recency"], c["T"]), rtol=1e-6)
    lifetimes_value = ggf.conditional_expected_average_profit(c["frequency"], c["monetary_value"])
    np.testing.assert_allclose(actual["expected_avg_value"], lifetimes_value, rtol=1e-6)
    lifetimes_clv = ggf.customer_lifetime_value(
        bgf, c["frequency"], c["recency"], c["T"], c["monetary_value"], time=months, discount_rate=discount_rate, freq="D"
    )
    np.testing.assert_allclose(actual["clv"], lifetimes_clv, rtol=1e-6)


def test_column_helpers_score_any_dataframe_with_summary_columns(spark):
    bgf, _ = _lifetimes_fitters()
    c = CUSTOMERS

    scores = spark.createDataFrame(c).select(
        expected_purchases(BGNBD_DAYS, F.col("T")).alias("e"), probability_alive(BGNBD_DAYS).alias("p")
    )
    rows = scores.toPandas()

    np.testing.assert_allclose(rows["e"], bgf.predict(c["T"], c["frequency"], c["recency"], c["T"]), rtol=1e-6)
    np.testing.assert_allclose(rows["p"], bgf.conditional_probability_alive(c["frequency"], c["recency"], c["T"]), rtol=1e-6)


# --------------------------------------------------------------------------- fit guards


def test_gamma_gamma_leaves_out_repeat_customers_without_positive_spend():
    cdnow = _lifetimes_csv("cdnow_customers_summary_with_transactions.csv").rename(columns={"x": "frequency", "zbar": "monetary_value"})
    refunds = pd.DataFrame({"frequency": [2, 5], "monetary_value": [0.0, -3.5]})

    fit = fit_gamma_gamma(pd.concat([cdnow[["frequency", "monetary_value"]], refunds]))

    without = fit_gamma_gamma(cdnow)
    assert fit["n_excluded"] == 2
    _assert_within(fit, {k: without[k] for k in ("p", "q", "v", "n_customers")}, rel=1e-12)


def test_fit_refuses_more_distinct_tuples_than_max_tuples(spark):
    summary = spark.createDataFrame(_lifetimes_csv("cdnow_customers_summary.csv"))

    with pytest.raises(CdpError, match="max_tuples=100"):
        fit_bgnbd(summary, max_tuples=100)


def test_fit_rejects_recency_beyond_t():
    summary = pd.DataFrame({"frequency": [1, 0], "recency": [12.0, 0.0], "T": [10.0, 10.0]})

    with pytest.raises(CdpError, match="recency <= T"):
        fit_bgnbd(summary)


def test_fit_names_the_missing_column():
    with pytest.raises(MissingColumnsError, match="monetary_value"):
        fit_gamma_gamma(pd.DataFrame({"frequency": [1]}))


def test_predict_clv_names_the_missing_column(spark):
    summary = spark.createDataFrame(CUSTOMERS.drop(columns="monetary_value"))

    with pytest.raises(MissingColumnsError, match="monetary_value"):
        predict_clv(summary, BGNBD_DAYS, PUBLISHED_GG, horizon=30.0)


def test_observation_end_must_be_a_date(spark):
    with pytest.raises(CdpError, match="observation_end='end of march'"):
        rfm_summary(_transactions(spark), customer_col="customer_id", timestamp_col="ts", amount_col=None, observation_end="end of march")


def test_fit_on_an_empty_summary_says_so():
    with pytest.raises(CdpError, match="no customers"):
        fit_bgnbd(pd.DataFrame({"frequency": [], "recency": [], "T": []}))
