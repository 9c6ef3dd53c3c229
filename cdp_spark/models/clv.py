"""Customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend, at Spark scale.

Column names and definitions follow ``lifetimes`` so data scientists can move between the two:
``frequency`` (repeat purchase periods), ``recency`` (age at the last purchase period), ``T``
(age at the end of observation) and ``monetary_value`` (mean spend of the repeat periods).

The fits are exact maximum likelihood, but never see one row per customer: Spark aggregates the
summary to its *distinct* sufficient-statistic tuples with a count, only those reach the driver,
and scipy maximises the count-weighted log-likelihood. With ``P`` whole periods of history
(what :func:`rfm_summary` produces) there are at most ``(P+1)(P+2)(P+3)/6`` distinct
``(frequency, recency, T)`` tuples whatever the number of customers (about 190,000 for two years
of weeks); the bound actually enforced is ``max_tuples``. Gamma-Gamma tuples are
``(frequency, monetary_value rounded to cents)``.

References: Fader, Hardie & Lee (2005) "Counting your customers the easy way" (BG/NBD);
Fader & Hardie (2013) "The Gamma-Gamma model of monetary value"; lifetimes 0.11.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

from cdp_spark.errors import CdpError, MissingColumnsError

log = logging.getLogger(__name__)

_FREQS = {"D": "day", "W": "week", "M": "month"}
_DAYS_PER_PERIOD = {"D": 1.0, "W": 7.0}
_BGNBD_COLS = ("frequency", "recency", "T")
_GG_COLS = ("frequency", "monetary_value")
_MAX_DISCOUNT_STEPS = 1000


# --------------------------------------------------------------------------- summary


def rfm_summary(
    transactions: DataFrame,
    *,
    customer_col: str,
    timestamp_col: str,
    amount_col: str | None,
    observation_end: str | dt.date | dt.datetime,
    freq: Literal["D", "W", "M"] = "W",
) -> DataFrame:
    """One row per customer with ``frequency``, ``recency``, ``T`` and ``monetary_value``.

    Same definitions as ``lifetimes.utils.summary_data_from_transaction_data``: transactions
    after ``observation_end`` are dropped, the rest are collapsed to periods (``freq`` "D" days,
    "W" ISO weeks starting Monday, "M" calendar months; amounts summed per period);
    ``frequency`` counts the purchase periods after the first, ``recency`` and ``T`` are the ages,
    in periods, of the last purchase period and of the observation-end period, measured from the
    first purchase period; ``monetary_value`` is the mean amount of the repeat periods (0 when
    ``frequency`` is 0). Without ``amount_col`` the ``monetary_value`` column is omitted.
    ``timestamp_col`` is a timestamp or date column, read in the session time zone. Rows with a
    null customer or timestamp are ignored.
    """
    if freq not in _FREQS:
        raise CdpError(f"rfm_summary: freq={freq!r} is not supported; use one of {', '.join(_FREQS)}")
    required = [customer_col, timestamp_col] + ([amount_col] if amount_col else [])
    missing = [c for c in required if c not in transactions.columns]
    if missing:
        raise MissingColumnsError(missing, where="rfm_summary transactions")
    end_period = _period_start(_timestamp_literal(observation_end), freq)

    amount = F.col(amount_col).cast("double") if amount_col else F.lit(0.0)
    periods = (
        transactions.where(F.col(customer_col).isNotNull() & F.col(timestamp_col).isNotNull())
        .select(customer_col, _period_start(F.col(timestamp_col), freq).alias("_period"), amount.alias("_amount"))
        .where(F.col("_period") <= end_period)
        .groupBy(customer_col, "_period")
        .agg(F.coalesce(F.sum("_amount"), F.lit(0.0)).alias("_amount"))  # all-null amounts sum to 0, as in pandas
    )
    aggs = [
        F.count(F.lit(1)).alias("_periods"),
        F.min("_period").alias("_first"),
        F.max("_period").alias("_last"),
    ]
    if amount_col:
        aggs += [F.sum("_amount").alias("_total"), F.min_by("_amount", "_period").alias("_first_amount")]
    per_customer = periods.groupBy(customer_col).agg(*aggs)

    frequency = (F.col("_periods") - 1).cast("long")
    out = [
        F.col(customer_col),
        frequency.alias("frequency"),
        _periods_between(F.col("_first"), F.col("_last"), freq).alias("recency"),
        _periods_between(F.col("_first"), end_period, freq).alias("T"),
    ]
    if amount_col:
        repeat_mean = (F.col("_total") - F.col("_first_amount")) / frequency
        out.append(F.when(frequency > 0, repeat_mean).otherwise(F.lit(0.0)).alias("monetary_value"))
    return per_customer.select(*out)


def _timestamp_literal(value: str | dt.date | dt.datetime) -> Column:
    """A timestamp literal read in the session time zone (a naive Python datetime would be read
    in the driver's local zone instead)."""
    try:
        text = pd.Timestamp(value).isoformat()
    except (TypeError, ValueError) as err:
        raise CdpError(f"rfm_summary: observation_end={value!r} is not a date or timestamp ({err})") from None
    return F.lit(text).cast("timestamp")


def _period_start(ts: Column, freq: str) -> Column:
    return F.date_trunc(_FREQS[freq], ts).cast("date")


def _periods_between(start: Column, end: Column, freq: str) -> Column:
    if freq == "M":
        return F.months_between(end, start).cast("double")
    return (F.datediff(end, start) / F.lit(_DAYS_PER_PERIOD[freq])).cast("double")


# --------------------------------------------------------------------------- fitting


def fit_bgnbd(
    summary: DataFrame | pd.DataFrame,
    *,
    penalizer: float = 0.0,
    max_iter: int = 1000,
    max_tuples: int = 5_000_000,
) -> dict[str, float | int | bool]:
    """Fit the BG/NBD model by maximum likelihood on the distinct (frequency, recency, T) tuples.

    ``summary`` is a Spark or pandas DataFrame with ``frequency``, ``recency`` and ``T``. Returns
    ``r``, ``alpha`` (in the summary's period unit), ``a``, ``b``, ``log_likelihood`` (total, without
    the penalty), ``n_customers``, ``n_tuples``, ``converged`` and ``iterations``. ``penalizer`` is
    lifetimes' L2 penalty on the parameters (with time rescaled so that the largest T is 1).
    Raises :class:`CdpError` when the summary holds more than ``max_tuples`` distinct tuples or
    invalid values.
    """
    tuples = _distinct_tuples(summary, _BGNBD_COLS, max_tuples, where="fit_bgnbd")
    x = tuples["frequency"].to_numpy(dtype=float)
    tx = tuples["recency"].to_numpy(dtype=float)
    T = tuples["T"].to_numpy(dtype=float)
    w = tuples["weight"].to_numpy(dtype=float)
    _check_bgnbd_values(x, tx, T)
    scale = 1.0 / T.max()
    data = _BgnbdData.build(x, tx * scale, T * scale, w)

    res = minimize(
        _bgnbd_objective,
        np.zeros(4),
        args=(data, penalizer),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-14, "gtol": 1e-9},
    )
    r, alpha, a, b = np.exp(res.x)
    alpha /= scale
    total_ll = -_bgnbd_objective(np.log([r, alpha, a, b]), _BgnbdData.build(x, tx, T, w), 0.0)[0] * w.sum()
    result = {
        "r": float(r),
        "alpha": float(alpha),
        "a": float(a),
        "b": float(b),
        "log_likelihood": float(total_ll),
        "n_customers": int(w.sum()),
        "n_tuples": len(x),
        "converged": bool(res.success),
        "iterations": int(res.nit),
    }
    _log_fit("BG/NBD", result, res.message)
    return result


def fit_gamma_gamma(
    summary: DataFrame | pd.DataFrame,
    *,
    penalizer: float = 0.0,
    max_iter: int = 1000,
    max_tuples: int = 5_000_000,
    monetary_decimals: int | None = 2,
) -> dict[str, float | int | bool]:
    """Fit the Gamma-Gamma spend model on the customers with ``frequency > 0``.

    Maximum likelihood on distinct (frequency, monetary_value) tuples, ``monetary_value`` rounded
    to ``monetary_decimals`` first (``None``: exact). Repeat customers with a non-positive
    ``monetary_value`` (refunds) cannot be modelled and are left out; ``n_excluded`` counts them.
    Returns ``p``, ``q``, ``v``, ``log_likelihood``, ``n_customers``, ``n_excluded``, ``n_tuples``,
    ``converged`` and ``iterations``. ``penalizer`` is lifetimes' L2 penalty on (p, q, v).
    """
    tuples = _distinct_tuples(summary, _GG_COLS, max_tuples, where="fit_gamma_gamma", monetary_decimals=monetary_decimals)
    repeat = tuples[tuples["frequency"] > 0]
    usable = repeat[repeat["monetary_value"] > 0]
    n_excluded = int(repeat["weight"].sum() - usable["weight"].sum())
    if n_excluded:
        log.warning("fit_gamma_gamma: left out %d repeat customers with monetary_value <= 0", n_excluded)
    if usable.empty:
        raise CdpError("fit_gamma_gamma: no customer has frequency > 0 and monetary_value > 0; nothing to fit")
    x = usable["frequency"].to_numpy(dtype=float)
    m = usable["monetary_value"].to_numpy(dtype=float)
    w = usable["weight"].to_numpy(dtype=float)
    _check_integer_frequency(x, "fit_gamma_gamma")
    scale = float(np.average(m, weights=w))

    res = minimize(
        _gg_objective,
        np.zeros(3),
        args=(x, m / scale, w, penalizer, np.array([1.0, 1.0, scale])),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-14, "gtol": 1e-9},
    )
    p, q, v = np.exp(res.x)
    v *= scale
    total_ll = -_gg_objective(np.log([p, q, v]), x, m, w, 0.0, np.ones(3))[0] * w.sum()
    result = {
        "p": float(p),
        "q": float(q),
        "v": float(v),
        "log_likelihood": float(total_ll),
        "n_customers": int(w.sum()),
        "n_excluded": n_excluded,
        "n_tuples": len(x),
        "converged": bool(res.success),
        "iterations": int(res.nit),
    }
    _log_fit("Gamma-Gamma", result, res.message)
    return result


def _log_fit(model: str, result: Mapping[str, float | int | bool], message: object) -> None:
    if result["converged"]:
        log.info("%s fit converged: %s", model, result)
    else:
        log.warning("%s fit did not converge (%s): %s; try a small penalizer or a larger max_iter", model, message, result)


def _distinct_tuples(
    summary: DataFrame | pd.DataFrame,
    cols: tuple[str, ...],
    max_tuples: int,
    *,
    where: str,
    monetary_decimals: int | None = None,
) -> pd.DataFrame:
    """The distinct ``cols`` tuples of ``summary`` with their customer count in ``weight``.

    Only at most ``max_tuples`` rows ever reach the driver; more is an error.
    """
    missing = [c for c in cols if c not in summary.columns]
    if missing:
        raise MissingColumnsError(missing, where=f"{where} summary")
    if isinstance(summary, pd.DataFrame):
        frame = summary[list(cols)].copy()
        if monetary_decimals is not None:
            frame["monetary_value"] = frame["monetary_value"].round(monetary_decimals)
        tuples = frame.groupby(list(cols), dropna=False).size().rename("weight").reset_index()
    else:
        exprs = [F.col(c).cast("double").alias(c) for c in cols]
        if monetary_decimals is not None:
            rounded = F.round(F.col("monetary_value").cast("double"), monetary_decimals)
            exprs[cols.index("monetary_value")] = rounded.alias("monetary_value")
        grouped = summary.select(*exprs).groupBy(*cols).agg(F.count(F.lit(1)).alias("weight"))
        tuples = grouped.limit(max_tuples + 1).toArrow().to_pandas()
    if tuples.empty:
        raise CdpError(f"{where}: the summary has no customers; check the transactions and observation_end")
    if len(tuples) > max_tuples:
        raise CdpError(
            f"{where}: the summary has more than max_tuples={max_tuples} distinct {cols} tuples; "
            "summarise with a coarser freq (e.g. 'W') or raise max_tuples if the driver has the memory"
        )
    if tuples[list(cols)].isna().to_numpy().any():
        raise CdpError(f"{where}: the summary has null {cols} values; drop or fix those customers first")
    log.info("%s: %d distinct tuples from %d customers", where, len(tuples), int(tuples["weight"].sum()))
    return tuples


def _check_integer_frequency(x: np.ndarray, where: str) -> None:
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise CdpError(f"{where}: frequency must be a non-negative whole number of repeat periods")


def _check_bgnbd_values(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> None:
    _check_integer_frequency(x, "fit_bgnbd")
    if np.any(tx < 0) or np.any(tx > T):
        raise CdpError("fit_bgnbd: recency must satisfy 0 <= recency <= T for every customer")
    if np.any((x == 0) & (tx != 0)):
        raise CdpError("fit_bgnbd: customers with frequency 0 must have recency 0 (lifetimes' convention)")
    if T.max() <= 0:
        raise CdpError("fit_bgnbd: every customer has T == 0; observe the customers for at least one period")


class _BgnbdData:
    """Tuples plus the index of each tuple's frequency among the distinct frequencies: the
    special functions of the likelihood depend on the frequency only, so they are evaluated on
    the (few) distinct frequencies and gathered."""

    def __init__(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray, xu: np.ndarray, xi: np.ndarray) -> None:
        self.x, self.tx, self.T, self.w, self.xu, self.xi = x, tx, T, w, xu, xi
        self.pos = x > 0
        self.b_shift = np.maximum(x, 1) - 1  # b + x - 1 for repeat customers; unused otherwise

    @classmethod
    def build(cls, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray) -> _BgnbdData:
        xu, xi = np.unique(x, return_inverse=True)
        return cls(x, tx, T, w, xu, xi)


def _bgnbd_objective(theta: np.ndarray, d: _BgnbdData, penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood (lifetimes' normalisation) and its gradient in log-parameters."""
    params = np.exp(theta)
    r, alpha, a, b = params
    xu = d.xu
    # Per distinct frequency: A1 + A2 without r*log(alpha), and the digamma parts of the gradient.
    a12 = gammaln(r + xu) - gammaln(r) + gammaln(a + b) + gammaln(b + xu) - gammaln(b) - gammaln(a + b + xu)
    g_r = digamma(r + xu) - digamma(r)
    g_a = digamma(a + b) - digamma(a + b + xu)
    g_b = g_a + digamma(b + xu) - digamma(b)
    rx = r + d.x
    log_aT = np.log(alpha + d.T)
    log_atx = np.log(alpha + d.tx)
    a3 = -rx * log_aT
    with np.errstate(divide="ignore"):
        a4 = np.where(d.pos, np.log(a) - np.log(b + d.b_shift) - rx * log_atx, -np.inf)
    top = np.maximum(a3, a4)
    e3 = np.exp(a3 - top)
    e4 = np.exp(a4 - top)
    s = e3 + e4
    ll = a12[d.xi] + r * np.log(alpha) + top + np.log(s)
    w3 = e3 / s
    w4 = e4 / s
    d_r = g_r[d.xi] + np.log(alpha) - w3 * log_aT - w4 * log_atx
    d_alpha = r / alpha - rx * (w3 / (alpha + d.T) + w4 / (alpha + d.tx))
    d_a = g_a[d.xi] + w4 / a
    d_b = g_b[d.xi] - w4 / (b + d.b_shift)
    total = d.w.sum()
    # Weighted sums as multiply-and-add, not np.dot: BLAS threads spin on a busy shared machine.
    value = -np.sum(d.w * ll) / total + penalizer * np.sum(params**2)
    grad = np.array([np.sum(d.w * g) for g in (d_r, d_alpha, d_a, d_b)])
    grad = -grad * params / total + 2.0 * penalizer * params**2
    return float(value), grad


def _gg_objective(
    theta: np.ndarray, x: np.ndarray, m: np.ndarray, w: np.ndarray, penalizer: float, units: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean negative Gamma-Gamma log-likelihood (lifetimes' normalisation) and its gradient.

    ``m`` may be rescaled for conditioning; ``units`` maps the parameters back to the original
    money unit so that the L2 penalty is lifetimes' (on p, q and v in the data's currency)."""
    params = np.exp(theta)
    p, q, v = params
    px = p * x
    log_xmv = np.log(x * m + v)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * log_xmv
    psi = digamma(px + q)
    d_p = x * (psi - digamma(px) + np.log(m) + np.log(x) - log_xmv)
    d_q = psi - digamma(q) + np.log(v) - log_xmv
    d_v = q / v - (px + q) / (x * m + v)
    total = w.sum()
    value = -np.sum(w * ll) / total + penalizer * np.sum((params * units) ** 2)
    grad = np.array([np.sum(w * g) for g in (d_p, d_q, d_v)])
    grad = -grad * params / total + 2.0 * penalizer * (params * units) ** 2
    return float(value), grad


# --------------------------------------------------------------------------- scoring


def probability_alive(params: Mapping[str, float]) -> Column:
    """P(alive) of each customer under BG/NBD ``params`` (closed form; reads ``frequency``,
    ``recency``, ``T``). Customers without a repeat purchase are alive by the model's definition."""
    r, alpha, a, b = _bgnbd_params(params)
    x, tx, T = F.col("frequency"), F.col("recency"), F.col("T")
    log_odds_dead = (F.lit(r) + x) * F.log((F.lit(alpha) + T) / (F.lit(alpha) + tx)) + F.log(F.lit(a) / (F.lit(b) + x - 1))
    return F.when(x == 0, F.lit(1.0)).otherwise(1.0 / (1.0 + F.exp(log_odds_dead)))


def expected_purchases(params: Mapping[str, float], t: float | Column) -> Column:
    """Expected number of repeat purchases in the next ``t`` periods given each customer's
    ``frequency``, ``recency``, ``T`` (BG/NBD conditional expectation, FHL 2005 eq. 10)."""
    r, alpha, a, b = _bgnbd_params(params)

    # pandas UDF: Spark has no Gaussian hypergeometric function; scipy's hyp2f1 runs per Arrow batch.
    @pandas_udf("double")  # type: ignore[call-overload]
    def _expected(x: pd.Series, tx: pd.Series, big_t: pd.Series, horizon: pd.Series) -> pd.Series:
        values = _conditional_expected_purchases(
            r, alpha, a, b, horizon.to_numpy(float), x.to_numpy(float), tx.to_numpy(float), big_t.to_numpy(float)
        )
        return pd.Series(values)

    horizon = t if isinstance(t, Column) else F.lit(float(t))
    return _expected(F.col("frequency"), F.col("recency"), F.col("T"), horizon.cast("double"))


def expected_average_value(gg_params: Mapping[str, float]) -> Column:
    """Gamma-Gamma conditional expected spend per purchase (Fader & Hardie 2013, eq. 5): a
    credibility-weighted mix of ``monetary_value`` and the population mean."""
    p, q, v = (float(gg_params[k]) for k in ("p", "q", "v"))
    x, m = F.col("frequency"), F.col("monetary_value")
    weight = F.lit(p) * x / (F.lit(p) * x + F.lit(q - 1.0))
    population_mean = v * p / (q - 1.0)
    return (1.0 - weight) * F.lit(population_mean) + weight * m


def predict_clv(
    summary: DataFrame,
    bgnbd: Mapping[str, float],
    gg: Mapping[str, float],
    *,
    horizon: float,
    discount_rate: float = 0.0,
    step: float = 1.0,
) -> DataFrame:
    """Add ``expected_purchases``, ``p_alive``, ``expected_avg_value`` and ``clv`` to ``summary``.

    ``horizon`` is in the summary's periods. ``clv`` sums, over steps of ``step`` periods, the
    expected purchases in each step times the expected spend, discounted by
    ``(1 + discount_rate) ** k`` for step ``k`` (lifetimes' ``customer_lifetime_value`` with
    ``time`` months is ``horizon = time * factor``, ``step = factor``, factor 30 for "D" and
    4.345 for "W"). With ``discount_rate == 0`` it is ``expected_purchases * expected_avg_value``.
    """
    missing = [c for c in (*_BGNBD_COLS, "monetary_value") if c not in summary.columns]
    if missing:
        raise MissingColumnsError(missing, where="predict_clv summary")
    if horizon <= 0 or step <= 0 or discount_rate <= -1:
        raise CdpError(f"predict_clv: need horizon > 0, step > 0 and discount_rate > -1 (got {horizon}, {step}, {discount_rate})")
    n_steps = math.ceil(horizon / step - 1e-9)
    if discount_rate != 0 and n_steps > _MAX_DISCOUNT_STEPS:
        raise CdpError(
            f"predict_clv: horizon/step = {n_steps} discount steps (at most {_MAX_DISCOUNT_STEPS}); "
            f"use a step of at least {horizon / _MAX_DISCOUNT_STEPS:g} periods"
        )

    scored = summary.withColumn("expected_purchases", expected_purchases(bgnbd, horizon))
    if discount_rate == 0:
        discounted = F.col("expected_purchases")
    else:
        discounted = _discounted_purchases(bgnbd, horizon, step, discount_rate)
    return scored.select(
        *summary.columns,
        "expected_purchases",
        probability_alive(bgnbd).alias("p_alive"),
        expected_average_value(gg).alias("expected_avg_value"),
        (discounted * expected_average_value(gg)).alias("clv"),
    )


def _discounted_purchases(params: Mapping[str, float], horizon: float, step: float, rate: float) -> Column:
    r, alpha, a, b = _bgnbd_params(params)
    n_steps = math.ceil(horizon / step - 1e-9)
    ends = np.minimum(np.arange(1, n_steps + 1) * step, horizon)
    factors = (1.0 + rate) ** -np.arange(1, n_steps + 1, dtype=float)

    # pandas UDF: the hypergeometric function (see expected_purchases), once per discount step.
    @pandas_udf("double")  # type: ignore[call-overload]
    def _discounted(x: pd.Series, tx: pd.Series, big_t: pd.Series) -> pd.Series:
        cum = _conditional_expected_purchases(
            r, alpha, a, b, ends[None, :], x.to_numpy(float)[:, None], tx.to_numpy(float)[:, None], big_t.to_numpy(float)[:, None]
        )
        per_step = np.diff(cum, axis=1, prepend=0.0)
        return pd.Series(per_step @ factors)

    return _discounted(F.col("frequency"), F.col("recency"), F.col("T"))


def _bgnbd_params(params: Mapping[str, float]) -> tuple[float, float, float, float]:
    missing = [k for k in ("r", "alpha", "a", "b") if k not in params]
    if missing:
        raise CdpError(f"BG/NBD params lack {', '.join(missing)}; pass the dict fit_bgnbd returned")
    return float(params["r"]), float(params["alpha"]), float(params["a"]), float(params["b"])


def _conditional_expected_purchases(
    r: float, alpha: float, a: float, b: float, t: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """FHL 2005 eq. 10, as lifetimes evaluates it (Euler's transformation when 2F1 overflows)."""
    big_a, big_b, big_c = r + x, b + x, a + b + x - 1
    z = t / (alpha + T + t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ln_hyp = np.log(hyp2f1(big_a, big_b, big_c, z))
        ln_hyp_euler = np.log(hyp2f1(big_c - big_a, big_c - big_b, big_c, z)) + (big_c - big_a - big_b) * np.log1p(-z)
        ln_hyp = np.where(np.isinf(ln_hyp), ln_hyp_euler, ln_hyp)
        numerator = (a + b + x - 1) / (a - 1) * (1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + t + T))))
        odds_dead = np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + tx)) ** (r + x), 0.0)
    return numerator / (1 + odds_dead)

