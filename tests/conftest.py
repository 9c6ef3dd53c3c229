"""Shared fixtures: one local Spark session for the whole test run, temp paths per test."""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    from cdp_spark.config import SparkConfig
    from cdp_spark.session import configure_builder

    base = tmp_path_factory.mktemp("spark")
    cfg = SparkConfig(master="local[2]", driver_memory="3g", shuffle_partitions=2, log_level="ERROR")
    builder = configure_builder(SparkSession.builder, cfg, str(base / "checkpoints"))
    session = (
        builder.config("spark.sql.warehouse.dir", str(base / "warehouse"))
        # the status store keeps every SQL execution's plan graph (1,000 by default): in a session that
        # runs hundreds of stage builds that alone fills a 3g heap
        .config("spark.sql.ui.retainedExecutions", "50")
        .config("spark.ui.retainedJobs", "200")
        .config("spark.ui.retainedStages", "200")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={base / 'derby'}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(base / "checkpoints"))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """The whole pipeline once on a small generated data set: (config, config path, stage results).

    Shared by the end-to-end, report and notebook tests. The config file is written next to the
    data so that other processes (notebook kernels, spark-submit) can load the same lakehouse.
    """
    from cdp_spark.config import load_config
    from cdp_spark.pipeline import run_pipeline
    from cdp_spark.synthetic import generate

    base = tmp_path_factory.mktemp("demo")
    start = date.today() - timedelta(days=300)  # recent data: anonymous ids are within their TTL
    generate(base / "data", customers=400, seed=5, days=300, start=start.isoformat())
    config_path = base / "cdp.yaml"
    config_path.write_text(
        f"include: [{ROOT / 'conf' / 'local.yaml'}]\n"
        "paths:\n"
        f"  landing: {base / 'data' / 'landing'}\n"
        f"  lakehouse: {base / 'lakehouse'}\n"
        f"  checkpoints: {base / 'checkpoints'}\n"
        f"  exports: {base / 'exports'}\n"
        f"  reports: {base / 'reports'}\n"
        f"  mlflow_tracking_uri: sqlite:///{base / 'mlflow.db'}\n"
        f"  mlflow_artifacts: {base / 'mlartifacts'}\n"
        "spark: {master: 'local[2]', shuffle_partitions: 2}\n"
        f"silver: {{local_secret_file: {base / 'secret.key'}}}\n"
        "models: {gbt_max_iter: 10}\n"
    )
    cfg = load_config(config_path)
    results = run_pipeline(spark, cfg, run_id="demo-run")
    return cfg, config_path, results
