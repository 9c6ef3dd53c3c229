"""The score stage: champion models and CLV parameters applied to current features → ``gold.customer_scores``.

Scores keep history: one row per customer and scoring date (an upsert, so rerunning a scoring
date replaces it rather than duplicating it), each with model name, version, MLflow run id and
the run id that produced it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig
from cdp_spark.errors import CdpError
from cdp_spark.faults import fault_point
from cdp_spark.models.datasets import TASKS
from cdp_spark.models.metrics import with_probability
from cdp_spark.models.train import features_at, model_name, read_inputs, setup_mlflow
from cdp_spark.ops import lake_for
from cdp_spark.privacy.objection import objecting_customers, withdraw_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreReport:
    rows_in: int
    rows_out: int
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.details)


def _champion(cfg: CdpConfig, task: str):
    import mlflow
    from mlflow.exceptions import MlflowException

    name = model_name(cfg, task)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException as err:
        raise CdpError(f"score: no champion for model {name!r}; run the train stage first ({err})") from None
    return name, version, mlflow.spark.load_model(f"models:/{name}@champion")


def scoring_date(inputs, run_date: date | None) -> date:
    if run_date:
        return run_date
    last = inputs.orders.agg(F.max("order_ts").alias("m")).first()["m"]
    return (last.date() if last else date.today()) + timedelta(days=1)


def clv_scores(inputs, params_row, *, observation_end: date, horizon_days: int, freq: str) -> DataFrame:
    from cdp_spark.models.clv import predict_clv, rfm_summary
    from cdp_spark.models.datasets import customer_orders

    summary = rfm_summary(customer_orders(inputs), customer_col="customer_uid", timestamp_col="order_ts", amount_col="amount_reporting", observation_end=observation_end, freq=freq)
    periods = horizon_days / (7.0 if freq == "W" else 1.0)
    scored = predict_clv(summary, json.loads(params_row["bgnbd_json"]), json.loads(params_row["gamma_gamma_json"]), horizon=periods)
    return scored.select("customer_uid", "expected_purchases", "p_alive", "clv")


def run_score(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> ScoreReport:
    lake = lake_for(spark, cfg, run_id=run_id, stage="score")
    inputs, _ = read_inputs(lake)
    as_of = scoring_date(inputs, run_date)
    features = features_at(inputs, as_of).cache()
    setup_mlflow(cfg, "cdp-scoring")
    scores = features.select("customer_uid")
    details: dict = {"scoring_date": str(as_of)}
    for task in TASKS:
        name, version, model = _champion(cfg, task)
        pred = with_probability(model.transform(features)).select("customer_uid", F.col("p").alias(f"{task}_probability"))
        scores = scores.join(pred, "customer_uid", "left").withColumn(f"{task}_model", F.lit(f"{name}/{version.version}")).withColumn(
            f"{task}_mlflow_run_id", F.lit(version.run_id)
        )
        details[task] = f"{name} v{version.version}"
    if lake.exists("gold", "clv_params"):
        latest = lake.read("gold", "clv_params").orderBy(F.col("observation_end").desc(), F.col("run_id").desc()).first()
        clv = clv_scores(inputs, latest, observation_end=as_of, horizon_days=cfg.models.clv_horizon_days, freq=cfg.models.clv_frequency)
        scores = scores.join(clv, "customer_uid", "left").withColumn("clv_mlflow_run_id", F.lit(latest["mlflow_run_id"]))
        details["clv"] = f"params from MLflow run {latest['mlflow_run_id']}"
    scores = scores.withColumn("scoring_date", F.lit(as_of)).withColumn("run_id", F.lit(run_id))
    objecting = objecting_customers(lake, cfg)
    if objecting is not None:
        objecting = objecting.localCheckpoint()
        scores = scores.join(objecting, "customer_uid", "left_anti")
    fault_point("score.before_upsert")
    result = lake.upsert("gold", "customer_scores", scores, keys=["customer_uid", "scoring_date"])
    if objecting is not None:
        details["scores_withdrawn"] = withdraw_scores(spark, lake, objecting, cfg)
    rows_out = lake.read("gold", "customer_scores").where(F.col("scoring_date") == F.lit(as_of)).count()
    log.info("scored %d customers for %s (version %s)", rows_out, as_of, result.version)
    features.unpersist()
    return ScoreReport(rows_in=features.count(), rows_out=rows_out, details=details)
