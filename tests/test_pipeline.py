"""End to end: every stage on a small generated data set, checked from the outside."""

from pathlib import Path

import deltalake
import pytest
from pyspark.sql import functions as F

from cdp_spark.evaluation import pairwise_metrics
from cdp_spark.ops import lake_for
from cdp_spark.pipeline import STAGES, run_stage


def test_every_stage_succeeds_and_writes_delta_tables(demo_run):
    cfg, _, results = demo_run
    assert [(r.stage, r.status) for r in results] == [(s, "succeeded") for s in STAGES], [r.error for r in results]
    root = Path(cfg.paths.lakehouse)
    for layer, table in [("bronze", "crm_customers"), ("bronze", "web_events"), ("silver", "identifiers"), ("silver", "orders"),
                         ("gold", "identity_map"), ("gold", "customer_profile"), ("gold", "customer_scores"), ("ops", "run_log")]:
        assert (root / layer / table / "_delta_log").is_dir(), f"{layer}.{table} is not a Delta table"
        assert deltalake.DeltaTable(str(root / layer / table)).to_pyarrow_table().num_rows > 0


def test_identity_map_covers_every_truth_record_and_matches_linkable_groups(demo_run, spark):
    cfg, _, _ = demo_run
    truth = spark.read.parquet(str(Path(cfg.paths.landing).parent / "truth" / "records.parquet"))
    identity_map = spark.createDataFrame(deltalake.DeltaTable(str(Path(cfg.paths.lakehouse) / "gold" / "identity_map")).to_pandas())
    assert truth.join(identity_map, ["source", "record_id"], "left_anti").count() == 0
    metrics = pairwise_metrics(identity_map, truth, true_cluster="linkable_group")
    assert metrics["precision"] >= 0.995, metrics
    assert metrics["recall"] >= 0.98, metrics


def test_rerunning_identity_on_unchanged_data_keeps_every_customer_id(demo_run, spark):
    cfg, _, _ = demo_run
    lake = lake_for(spark, cfg)
    before = lake.read("gold", "identity_map").localCheckpoint()
    result = run_stage(spark, cfg, "identity", run_id="demo-rerun")
    assert result.status == "succeeded", result.error
    after = lake.read("gold", "identity_map")
    changed = before.join(after.withColumnRenamed("customer_uid", "uid_after"), ["source", "record_id"]).where(F.col("customer_uid") != F.col("uid_after"))
    assert changed.count() == 0
    assert after.count() == before.count()


def test_champions_are_registered_and_scores_carry_model_versions(demo_run, spark):
    import mlflow

    cfg, _, _ = demo_run
    mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    for task in ("churn", "propensity"):
        version = client.get_model_version_by_alias(f"{cfg.models.registered_prefix}_{task}", "champion")
        assert version.version == "1"
    scores = lake_for(spark, cfg).read("gold", "customer_scores")
    row = scores.select("churn_model", "propensity_model", "run_id").distinct().collect()
    assert [(r["churn_model"], r["propensity_model"], r["run_id"]) for r in row] == [("cdp_churn/1", "cdp_propensity/1", "demo-run")]
    assert scores.where(F.col("churn_probability").isNull() | F.col("propensity_probability").isNull()).count() == 0
    assert scores.where(F.col("clv").isNotNull()).count() > 0


def test_rerunning_bronze_over_the_same_landing_files_ingests_nothing(demo_run, spark):
    cfg, _, _ = demo_run
    lake = lake_for(spark, cfg)
    versions = {s.name: lake.version("bronze", s.name) for s in cfg.sources}
    result = run_stage(spark, cfg, "bronze", run_id="demo-bronze-rerun")
    assert result.status == "succeeded" and result.rows_out == 0
    assert {s.name: lake.version("bronze", s.name) for s in cfg.sources} == versions


@pytest.mark.parametrize("stage", STAGES)
def test_spark_submit_entry_point_exists_for_every_stage(stage):
    job = Path(__file__).resolve().parents[1] / "jobs" / f"{stage}.py"
    assert f'stage_main("{stage}"' in job.read_text()
