"""Benchmark the CLV fits at scale against lifetimes, on synthetic BG/NBD + Gamma-Gamma customers.

Customers are drawn from the models' generative processes (numpy, fixed seed) with CDNOW-like
true parameters, written to Parquet with pyarrow, and fitted three ways:

- ``spark``: ``spark.read.parquet`` -> ``fit_bgnbd`` / ``fit_gamma_gamma`` (Spark aggregation to
  distinct tuples, transfer, scipy optimisation): the production path;
- ``pandas``: the same fits on the in-memory pandas summary (driver only);
- ``lifetimes``: ``BetaGeoFitter``/``GammaGammaFitter`` on one row per customer, as usually called
  (skipped above ``--lifetimes-max`` customers), and ``lifetimes-weighted`` on our distinct tuples
  with their counts as weights.

Times are wall seconds and exclude data generation and Spark start-up. Parameter recovery is the
largest relative error against the true parameters.

    .venv/bin/python scripts/bench_clv.py --sizes 1000000 10000000 --out bench-results/clv.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # per week, FHL 2005 on CDNOW
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie 2013 on CDNOW
OBSERVATION_DAY = 546  # 78 weeks after the first cohort day, as in CDNOW
COHORT_DAYS = 364  # first purchases spread uniformly over the first 52 weeks


def simulate(n: int, seed: int) -> pd.DataFrame:
    """Weekly summaries of ``n`` customers, as ``rfm_summary(freq="D")`` would report them in weeks.

    BG/NBD: lambda ~ Gamma(r, 1/alpha), p ~ Beta(a, b); K ~ Poisson(lambda T) purchases would
    happen in [0, T]; the customer drops out after repeat purchase N ~ Geometric(p); frequency
    x = min(K, N) and, given K, the x-th purchase time is T * Beta(x, K - x + 1). The first purchase
    happens at a uniform time of its day, and recency is floored to whole days as a daily summary
    does. Gamma-Gamma: nu ~ Gamma(q, 1/v), the mean of x spends ~ Gamma(p x, 1/nu) / x, in cents.
    """
    rng = np.random.default_rng(seed)
    t_days = OBSERVATION_DAY - rng.integers(0, COHORT_DAYS, n)
    big_t = t_days / 7.0
    lam = rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], n)
    dropout = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    k = rng.poisson(lam * big_t)
    x = np.minimum(k, rng.geometric(dropout))
    repeat = x > 0
    last_days = np.zeros(n)
    last_days[repeat] = t_days[repeat] * rng.beta(x[repeat], k[repeat] - x[repeat] + 1)
    recency_days = np.minimum(np.floor(rng.random(n) + last_days), t_days)
    recency_days[~repeat] = 0.0
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    monetary = np.zeros(n)
    monetary[repeat] = np.round(rng.gamma(TRUE_GG["p"] * x[repeat], 1.0 / nu[repeat]) / x[repeat], 2)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "frequency": x.astype(np.int64),
            "recency": recency_days / 7.0,
            "T": big_t,
            "monetary_value": monetary,
        }
    )


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _max_rel_error(params: dict[str, float], truth: dict[str, float]) -> float:
    return max(abs(params[k] - v) / v for k, v in truth.items())


def _row(
    n: int, model: str, method: str, seconds: float, params: dict[str, float], truth: dict[str, float], tuples: int | None
) -> dict[str, Any]:
    return {
        "customers": n,
        "model": model,
        "method": method,
        "seconds": round(seconds, 3),
        "tuples": tuples,
        "params": {k: float(params[k]) for k in truth},
        "max_rel_error_vs_truth": _max_rel_error(params, truth),
    }


def _lifetimes_row(n: int, model: str, method: str, truth: dict[str, float], tuples: int | None, fit: Callable[[], Any]) -> dict[str, Any]:
    """lifetimes raises its own ConvergenceError (and prints the optimiser state); record it as a row."""
    try:
        fitter, secs = _timed(fit)
    except Exception as err:  # lifetimes' ConvergenceError is a ValueError; MemoryError at scale
        logging.warning("n=%d %s %s failed: %r", n, model, method, err)
        return {"customers": n, "model": model, "method": method, "error": repr(err)}
    return _row(n, model, method, secs, fitter.params_.to_dict(), truth, tuples)


def bench_size(spark: Any, n: int, seed: int, workdir: Path, lifetimes_max: int) -> list[dict[str, Any]]:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    from cdp_spark.models.clv import fit_bgnbd, fit_gamma_gamma

    summary, gen_s = _timed(lambda: simulate(n, seed))
    path = workdir / f"summary_{n}.parquet"
    pq.write_table(pa.Table.from_pandas(summary, preserve_index=False), path, row_group_size=1 << 20)
    logging.info("n=%d simulated in %.1fs, %.1f%% repeat customers", n, gen_s, 100 * (summary["frequency"] > 0).mean())
    rows: list[dict[str, Any]] = []

    df = spark.read.parquet(str(path))
    bg, secs = _timed(lambda: fit_bgnbd(df))
    rows.append(_row(n, "bgnbd", "spark", secs, bg, TRUE_BGNBD, bg["n_tuples"]))
    gg, secs = _timed(lambda: fit_gamma_gamma(df))
    rows.append(_row(n, "gamma_gamma", "spark", secs, gg, TRUE_GG, gg["n_tuples"]))

    bg_pd, secs = _timed(lambda: fit_bgnbd(summary))
    rows.append(_row(n, "bgnbd", "pandas", secs, bg_pd, TRUE_BGNBD, bg_pd["n_tuples"]))
    gg_pd, secs = _timed(lambda: fit_gamma_gamma(summary))
    rows.append(_row(n, "gamma_gamma", "pandas", secs, gg_pd, TRUE_GG, gg_pd["n_tuples"]))

    tuples = summary.groupby(["frequency", "recency", "T"]).size().rename("weight").reset_index()
    weighted = partial(BetaGeoFitter().fit, tuples["frequency"], tuples["recency"], tuples["T"], weights=tuples["weight"])
    rows.append(_lifetimes_row(n, "bgnbd", "lifetimes-weighted", TRUE_BGNBD, len(tuples), weighted))
    if n <= lifetimes_max:
        repeat = summary[summary["frequency"] > 0]
        per_customer = partial(BetaGeoFitter().fit, summary["frequency"], summary["recency"], summary["T"])
        rows.append(_lifetimes_row(n, "bgnbd", "lifetimes", TRUE_BGNBD, None, per_customer))
        spend = partial(GammaGammaFitter().fit, repeat["frequency"], repeat["monetary_value"])
        rows.append(_lifetimes_row(n, "gamma_gamma", "lifetimes", TRUE_GG, None, spend))
    else:
        logging.info("n=%d: lifetimes per-customer fits skipped (above --lifetimes-max=%d)", n, lifetimes_max)
    path.unlink()
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'customers':>11} {'model':<12} {'method':<19} {'seconds':>8} {'tuples':>9}  {'params':<52} {'max rel err':>11}"
    sys.stdout.write(header + "\n" + "-" * len(header) + "\n")
    for r in rows:
        if "error" in r:
            sys.stdout.write(f"{r['customers']:>11,} {r['model']:<12} {r['method']:<19} failed: {r['error']}\n")
            continue
        params = " ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
        tuples = "-" if r["tuples"] is None else str(r["tuples"])
        sys.stdout.write(
            f"{r['customers']:>11,} {r['model']:<12} {r['method']:<19} {r['seconds']:>8.2f} {tuples:>9}  {params:<52} "
            f"{r['max_rel_error_vs_truth']:>10.2%}\n"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--lifetimes-max", type=int, default=1_000_000, help="largest size for lifetimes' per-customer fits")
    parser.add_argument("--out", type=Path, default=Path("bench-results/clv.json"))
    parser.add_argument("--driver-memory", default="4g")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from pyspark.sql import SparkSession

    from cdp_spark.config import SparkConfig
    from cdp_spark.session import configure_builder

    workdir = Path(tempfile.mkdtemp(prefix="bench_clv_"))
    cfg = SparkConfig(master="local[2]", driver_memory=args.driver_memory, shuffle_partitions=4, log_level="WARN")
    builder = configure_builder(SparkSession.builder, cfg, str(workdir / "checkpoints"))
    spark, startup_s = _timed(builder.getOrCreate)
    spark.sparkContext.setLogLevel("WARN")
    spark.range(1).count()  # first job: JVM class loading, not part of any fit
    logging.info("spark %s started in %.1fs", spark.version, startup_s)
    rows: list[dict[str, Any]] = []
    try:
        for n in args.sizes:
            rows += bench_size(spark, n, args.seed, workdir, args.lifetimes_max)
    finally:
        spark.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    _print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "true_bgnbd": TRUE_BGNBD,
        "true_gamma_gamma": TRUE_GG,
        "seed": args.seed,
        "spark_master": cfg.master,
        "spark_startup_seconds": round(startup_s, 2),
    }
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    logging.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
