"""Point-in-time training sets: features strictly before a cutoff, labels from the window after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.errors import MissingColumnsError

TASKS = ("churn", "propensity")


@dataclass(frozen=True)
class Inputs:
    """The DataFrames a training set is built from (all read once per run)."""

    orders: DataFrame  # silver.orders
    interactions: DataFrame  # silver.interactions
    identity_map: DataFrame  # gold.identity_map
    records: DataFrame  # silver.customer_records


def customer_orders(inputs: Inputs) -> DataFrame:
    """``customer_uid, order_ts, amount_reporting`` for every order resolved to a customer."""
    for col in ("source", "record_id", "order_ts", "amount_reporting"):
        if col not in inputs.orders.columns:
            raise MissingColumnsError([col], "silver.orders")
    return inputs.orders.join(inputs.identity_map, ["source", "record_id"]).select("customer_uid", "order_ts", "amount_reporting")


def _ts(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def labels(orders: DataFrame, population: DataFrame, *, task: str, cutoff: date, window_days: int) -> DataFrame:
    """``customer_uid, label`` for ``population`` at ``cutoff``.

    churn: 1 when the customer makes no purchase in [cutoff, cutoff + window); population: buyers before the cutoff.
    propensity: 1 when the customer makes a purchase in [cutoff, cutoff + window).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    start, end = _ts(cutoff), _ts(cutoff + timedelta(days=window_days))
    buyers = orders.where((F.col("order_ts") >= F.lit(start)) & (F.col("order_ts") < F.lit(end))).select("customer_uid").distinct().withColumn("_bought", F.lit(1))
    joined = population.select("customer_uid").distinct().join(buyers, "customer_uid", "left")
    bought = F.coalesce(F.col("_bought"), F.lit(0))
    label = (1 - bought) if task == "churn" else bought
    return joined.select("customer_uid", label.cast("double").alias("label"))


def population(orders: DataFrame, features: DataFrame, *, task: str, cutoff: date) -> DataFrame:
    """Who is scored: churn needs at least one purchase before the cutoff; propensity everyone known."""
    if task == "churn":
        return orders.where(F.col("order_ts") < F.lit(_ts(cutoff))).select("customer_uid").distinct()
    return features.select("customer_uid").distinct()


def training_set(inputs: Inputs, features: DataFrame, *, task: str, cutoff: date, window_days: int) -> DataFrame:
    """Features as of ``cutoff`` (computed by the caller from events strictly before it) joined to labels."""
    orders = customer_orders(inputs)
    pop = population(orders, features, task=task, cutoff=cutoff)
    return features.join(labels(orders, pop, task=task, cutoff=cutoff, window_days=window_days), "customer_uid")
