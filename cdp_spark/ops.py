"""Run metadata: one row per stage run in ``ops.run_log`` (read by ``cdp status`` and the run report)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig

if TYPE_CHECKING:
    from cdp_spark.pipeline import StageResult

log = logging.getLogger(__name__)

RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("stage", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), False),
        T.StructField("seconds", T.DoubleType(), False),
        T.StructField("rows_in", T.LongType(), False),
        T.StructField("rows_out", T.LongType(), False),
        T.StructField("error", T.StringType(), True),
        T.StructField("details_json", T.StringType(), True),
    ]
)


def lake_for(spark: SparkSession, cfg: CdpConfig, *, run_id: str | None = None, stage: str | None = None):
    """The lakehouse of ``cfg`` with the configured storage engine."""
    from cdp_spark.lake import Lake

    return Lake(spark, cfg.paths.lakehouse, engine=cfg.engines.storage, run_id=run_id, stage=stage)


def record_stage_result(spark: SparkSession, cfg: CdpConfig, result: StageResult) -> None:
    row = (
        result.run_id,
        result.stage,
        result.status,
        result.started_at.replace(tzinfo=None),
        datetime.now(timezone.utc).replace(tzinfo=None),
        float(result.seconds),
        int(result.rows_in),
        int(result.rows_out),
        result.error,
        json.dumps(result.details, default=str, sort_keys=True),
    )
    df = spark.createDataFrame([row], RUN_LOG_SCHEMA)
    lake_for(spark, cfg, run_id=result.run_id, stage="ops").append("ops", "run_log", df)


def recent_runs(spark: SparkSession, cfg: CdpConfig, limit: int = 20) -> DataFrame:
    lake = lake_for(spark, cfg)
    if not lake.exists("ops", "run_log"):
        return spark.createDataFrame([], RUN_LOG_SCHEMA)
    return lake.read("ops", "run_log").orderBy("started_at", ascending=False).limit(limit)
