"""The train stage: churn and propensity classifiers (MLlib, tracked in MLflow) and CLV (BG/NBD + Gamma-Gamma).

Time-based validation: a model is fitted on features at ``train_cutoff`` with labels from the
window after it, and validated on features at ``valid_cutoff = train_cutoff + window`` with
labels from the window after that. The best of the logistic-regression baseline and the
gradient-boosted trees becomes the challenger; it is registered and becomes ``champion`` only if
it beats the current champion on the same holdout.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.errors import CdpError
from cdp_spark.models.datasets import TASKS, Inputs, customer_orders, training_set
from cdp_spark.models.metrics import BinaryMetrics, binary_metrics, with_probability, write_plots
from cdp_spark.ops import lake_for

log = logging.getLogger(__name__)

INPUT_TABLES = (("silver", "orders"), ("silver", "interactions"), ("silver", "customer_record_history"), ("gold", "identity_map"))
PIP_REQUIREMENTS = ["pyspark==4.2.0"]  # explicit: MLflow's requirement inference costs ~20 s per model


@dataclass(frozen=True)
class TrainReport:
    rows_in: int
    rows_out: int
    models: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"models": self.models}


def model_name(cfg: CdpConfig, task: str) -> str:
    return f"{cfg.models.registered_prefix}_{task}"


def window_days(cfg: CdpConfig, task: str) -> int:
    return cfg.models.churn_days if task == "churn" else cfg.models.propensity_days


def read_inputs(lake) -> tuple[Inputs, dict[str, int | None]]:
    versions = {f"{layer}.{name}": lake.version(layer, name) for layer, name in INPUT_TABLES}
    inputs = Inputs(
        orders=lake.read("silver", "orders"),
        interactions=lake.read("silver", "interactions"),
        identity_map=lake.read("gold", "identity_map"),
        records=lake.read("silver", "customer_record_history"),  # point-in-time: every version
    )
    return inputs, versions


def features_at(inputs: Inputs, cutoff: date) -> DataFrame:
    """Point-in-time features (events strictly before ``cutoff``) from the gold feature builder."""
    from cdp_spark.profiles import build_features

    return build_features(inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=cutoff)


def feature_columns(df: DataFrame) -> list[str]:
    numeric = (T.IntegerType, T.LongType, T.DoubleType, T.FloatType, T.ShortType, T.DecimalType, T.BooleanType)
    return [f.name for f in df.schema.fields if f.name not in ("customer_uid", "label") and isinstance(f.dataType, numeric)]


def default_cutoff(orders: DataFrame, cfg: CdpConfig) -> date:
    if cfg.models.cutoff:
        return date.fromisoformat(cfg.models.cutoff)
    last = orders.agg(F.max("order_ts").alias("m")).first()["m"]
    if last is None:
        raise CdpError("train: silver.orders has no orders to learn from; run bronze and silver on data with orders first")
    return last.date() - timedelta(days=cfg.models.churn_days)


def _pipeline(kind: str, features: list[str], cfg: CdpConfig) -> Pipeline:
    typed = [f"{c}__d" for c in features]
    imputer = Imputer(inputCols=typed, outputCols=[f"{c}__i" for c in features], strategy="median")
    assembler = VectorAssembler(inputCols=[f"{c}__i" for c in features], outputCol="raw_features", handleInvalid="keep")
    if kind == "logistic_regression":
        scaler = StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True)
        return Pipeline(stages=[_caster(features), imputer, assembler, scaler, LogisticRegression(maxIter=100, regParam=0.01, elasticNetParam=0.0)])
    gbt = GBTClassifier(featuresCol="raw_features", maxIter=cfg.models.gbt_max_iter, maxDepth=4, stepSize=0.1, seed=cfg.models.seed)
    return Pipeline(stages=[_caster(features), imputer, assembler, gbt])


def _caster(features: list[str]):
    """A SQLTransformer casting every feature to double (Imputer needs floating point input)."""
    from pyspark.ml.feature import SQLTransformer

    casts = ", ".join(f"CAST(`{c}` AS DOUBLE) AS `{c}__d`" for c in features)
    return SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__")


def _importances(model: PipelineModel, features: list[str]) -> dict[str, float]:
    last = model.stages[-1]
    if hasattr(last, "featureImportances"):
        values = last.featureImportances.toArray()
    elif hasattr(last, "coefficients"):
        values = [abs(v) for v in last.coefficients.toArray()]
    else:
        return {}
    return {f: float(v) for f, v in zip(features, values)}


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from cdp_spark import __version__

    return __version__


def setup_mlflow(cfg: CdpConfig, experiment: str) -> str:
    import mlflow

    uri = cfg.paths.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        artifacts = cfg.paths.mlflow_artifacts
        location = artifacts if "://" in artifacts else Path(artifacts).resolve().as_uri()
        return client.create_experiment(experiment, artifact_location=f"{location}/{experiment}")
    return exp.experiment_id


def champion_metrics(cfg: CdpConfig, task: str, valid: DataFrame) -> tuple[str | None, BinaryMetrics | None]:
    """The current champion's version and its metrics on this holdout (None when there is none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = model_name(cfg, task)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None, None
    model = mlflow.spark.load_model(f"models:/{name}@champion")
    return str(version.version), binary_metrics(with_probability(model.transform(valid)))


def train_task(spark: SparkSession, cfg: CdpConfig, inputs: Inputs, versions: dict, *, task: str, valid_cutoff: date, run_id: str) -> dict:
    """Fit LR and GBT for ``task``, log both runs, register the better one and promote it if it wins."""
    import mlflow
    from mlflow.models import infer_signature

    days = window_days(cfg, task)
    train_cutoff = valid_cutoff - timedelta(days=days)
    train_df = training_set(inputs, features_at(inputs, train_cutoff), task=task, cutoff=train_cutoff, window_days=days).cache()
    valid_df = training_set(inputs, features_at(inputs, valid_cutoff), task=task, cutoff=valid_cutoff, window_days=days).cache()
    n_train, n_valid = train_df.count(), valid_df.count()
    stats = train_df.agg(F.countDistinct("label").alias("classes")).first()
    if n_train == 0 or n_valid == 0 or stats["classes"] < 2:
        raise CdpError(f"train {task}: not enough labelled data (train={n_train}, valid={n_valid}, classes={stats['classes']}); generate more history or lower models.{task}_days")
    features = feature_columns(train_df)
    experiment_id = setup_mlflow(cfg, f"cdp-{task}")
    candidates = []
    for kind in ("logistic_regression", "gbt"):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{task}-{kind}-{run_id}") as run:
            model = _pipeline(kind, features, cfg).fit(train_df)
            scored = with_probability(model.transform(valid_df)).cache()
            metrics = binary_metrics(scored)
            importances = _importances(model, features)
            mlflow.log_params({
                "task": task, "model": kind, "train_cutoff": str(train_cutoff), "valid_cutoff": str(valid_cutoff), "window_days": days,
                "n_train": n_train, "n_valid": n_valid, "n_features": len(features), "gbt_max_iter": cfg.models.gbt_max_iter,
            })
            mlflow.log_metrics(metrics.as_dict())
            mlflow.set_tags({"cdp.run_id": run_id, "code_version": _code_version(), **{f"delta_version.{k}": str(v) for k, v in versions.items()}})
            with tempfile.TemporaryDirectory() as tmp:
                for path in write_plots(scored, Path(tmp), title=f"{task} {kind}", importances=importances):
                    mlflow.log_artifact(str(path), artifact_path="plots")
                (Path(tmp) / "features.json").write_text(json.dumps({"features": features, "importances": importances}, indent=2))
                mlflow.log_artifact(str(Path(tmp) / "features.json"))
            scored.unpersist()
            candidates.append((metrics.roc_auc, kind, run.info.run_id, model, metrics))
            log.info("train %s %s roc_auc=%.4f pr_auc=%.4f", task, kind, metrics.roc_auc, metrics.pr_auc)
    best_auc, best_kind, best_run, best_model, best_metrics = max(candidates, key=lambda c: c[0])
    example = valid_df.select("customer_uid", *features).limit(5).toPandas()
    signature = infer_signature(example, with_probability(best_model.transform(valid_df.limit(5))).select("p").toPandas())
    name = model_name(cfg, task)
    with mlflow.start_run(run_id=best_run):
        info = mlflow.spark.log_model(best_model, artifact_path="model", registered_model_name=name, signature=signature, input_example=example, pip_requirements=PIP_REQUIREMENTS)
    client = mlflow.MlflowClient()
    new_version = info.registered_model_version
    champ_version, champ = champion_metrics(cfg, task, valid_df)
    promoted = champ is None or best_metrics.roc_auc > champ.roc_auc + cfg.models.min_improvement
    if promoted:
        client.set_registered_model_alias(name, "champion", str(new_version))
    client.set_model_version_tag(name, str(new_version), "decision", "champion" if promoted else f"challenger (champion v{champ_version} auc={champ.roc_auc:.4f})")
    train_df.unpersist()
    valid_df.unpersist()
    return {
        "model": name, "version": str(new_version), "kind": best_kind, "roc_auc": round(best_auc, 4), "pr_auc": round(best_metrics.pr_auc, 4),
        "promoted": promoted, "champion_version": str(new_version) if promoted else champ_version, "mlflow_run_id": best_run,
        "n_train": n_train, "n_valid": n_valid,
    }


def train_clv(spark: SparkSession, cfg: CdpConfig, inputs: Inputs, versions: dict, *, observation_end: date, run_id: str) -> dict:
    """Fit BG/NBD + Gamma-Gamma on per-customer summaries and record the parameters (MLflow + gold.clv_params)."""
    import mlflow

    from cdp_spark.models.clv import fit_bgnbd, fit_gamma_gamma, rfm_summary

    orders = customer_orders(inputs)
    summary = rfm_summary(orders, customer_col="customer_uid", timestamp_col="order_ts", amount_col="amount_reporting", observation_end=observation_end, freq=cfg.models.clv_frequency).cache()
    bg = fit_bgnbd(summary)
    gg = fit_gamma_gamma(summary)
    experiment_id = setup_mlflow(cfg, "cdp-clv")
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"clv-{run_id}") as run:
        mlflow.log_params({"observation_end": str(observation_end), "freq": cfg.models.clv_frequency, "horizon_days": cfg.models.clv_horizon_days})
        mlflow.log_metrics({f"bgnbd_{k}": float(v) for k, v in bg.items() if isinstance(v, (int, float))})
        mlflow.log_metrics({f"gg_{k}": float(v) for k, v in gg.items() if isinstance(v, (int, float))})
        mlflow.log_dict({"bgnbd": bg, "gamma_gamma": gg}, "clv_params.json")
        mlflow.set_tags({"cdp.run_id": run_id, "code_version": _code_version(), **{f"delta_version.{k}": str(v) for k, v in versions.items()}})
    summary.unpersist()
    return {"bgnbd": bg, "gamma_gamma": gg, "mlflow_run_id": run.info.run_id, "observation_end": str(observation_end)}


def run_train(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> TrainReport:
    lake = lake_for(spark, cfg, run_id=run_id, stage="train")
    inputs, versions = read_inputs(lake)
    valid_cutoff = default_cutoff(inputs.orders, cfg)
    results = {task: train_task(spark, cfg, inputs, versions, task=task, valid_cutoff=valid_cutoff, run_id=run_id) for task in TASKS}
    clv = train_clv(spark, cfg, inputs, versions, observation_end=valid_cutoff + timedelta(days=cfg.models.churn_days), run_id=run_id)
    params = spark.createDataFrame(
        [(run_id, clv["mlflow_run_id"], clv["observation_end"], json.dumps(clv["bgnbd"]), json.dumps(clv["gamma_gamma"]))],
        "run_id string, mlflow_run_id string, observation_end string, bgnbd_json string, gamma_gamma_json string",
    )
    lake.upsert("gold", "clv_params", params, keys=["run_id"])  # one row per run, also when resumed
    results["clv"] = clv
    rows_in = inputs.identity_map.count()
    return TrainReport(rows_in=rows_in, rows_out=sum(r.get("n_train", 0) for r in results.values() if isinstance(r, dict)), models=results)
