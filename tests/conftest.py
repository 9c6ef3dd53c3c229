"""Shared fixtures: one local Spark session for the whole test run, temp paths per test."""

from __future__ import annotations

import os
import sys
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
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={base / 'derby'}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(base / "checkpoints"))
    yield session
    session.stop()
