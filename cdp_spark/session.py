"""SparkSession construction and JVM capability detection.

Builders compose (take a builder, return a builder) so users can add their own settings.
Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from cdp_spark.config import CdpConfig, SparkConfig

log = logging.getLogger(__name__)

DELTA_CLASS = "io.delta.tables.DeltaTable"
GRAPHFRAMES_CLASS = "org.graphframes.GraphFrame"

# Settings every embedded session gets; cluster sessions only get the ones that do not
# fight spark-submit (no master, no memory).
_COMMON_CONF = {
    # Delta stores timestamps as INT64 microseconds; INT96 is not part of the protocol.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.session.timeZone": "UTC",
    # No _SUCCESS markers inside table directories.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.enable.summary-metadata": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


@dataclass(frozen=True)
class Capabilities:
    """What the session's JVM can load."""

    delta: bool
    graphframes: bool


def configure_builder(builder: SparkSession.Builder, spark_cfg: SparkConfig, checkpoint_dir: str | None = None) -> SparkSession.Builder:
    """Apply cdp-spark settings to a builder. Cluster mode adds nothing that spark-submit sets."""
    builder = builder.appName(spark_cfg.app_name)
    if spark_cfg.mode == "embedded":
        builder = (
            builder.master(spark_cfg.master)
            .config("spark.driver.memory", spark_cfg.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(spark_cfg.shuffle_partitions))
            .config("spark.default.parallelism", str(spark_cfg.shuffle_partitions))
            # A local run keeps its shuffle files, caches and local checkpoints on one disk: compress
            # serialized blocks (checkpoints and caches spilled to disk), and let the context cleaner
            # delete the shuffle files of finished plans every few minutes instead of every 30
            # (it runs when the driver's garbage collector has dropped them, which a large heap
            # may not do for a long time).
            .config("spark.rdd.compress", "true")
            .config("spark.cleaner.periodicGC.interval", "5min")
        )
    for key, value in _COMMON_CONF.items():
        builder = builder.config(key, value)
    jars = [str(Path(j).expanduser()) for j in spark_cfg.jars]
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    if spark_cfg.packages.enabled:
        builder = builder.config("spark.jars.packages", ",".join(spark_cfg.packages.coordinates))
        builder = builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        builder = builder.config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    for key, value in spark_cfg.conf.items():
        builder = builder.config(key, value)
    if checkpoint_dir:
        builder = builder.config("spark.cdp.checkpointDir", checkpoint_dir)
    return builder


def build_session(cfg: CdpConfig) -> SparkSession:
    """Build (or get) the SparkSession described by ``cfg`` and log the detected capabilities."""
    if cfg.spark.mode == "embedded":
        Path(cfg.paths.checkpoints).mkdir(parents=True, exist_ok=True)
        # Local Python workers must run this interpreter (the one with cdp_spark and its
        # dependencies); PySpark reads PYSPARK_PYTHON when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = configure_builder(SparkSession.builder, cfg.spark, cfg.paths.checkpoints).getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    spark.sparkContext.setCheckpointDir(cfg.paths.checkpoints)
    caps = detect_capabilities(spark)
    log.info("spark %s master=%s delta_jvm=%s graphframes_jvm=%s", spark.version, spark.sparkContext.master, caps.delta, caps.graphframes)
    return spark


def _class_loadable(spark: SparkSession, class_name: str) -> bool:
    jvm = getattr(spark, "_jvm", None) or getattr(spark.sparkContext, "_jvm", None)
    if jvm is None:  # Spark Connect: no py4j gateway; the server decides.
        return False
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
        return True
    except Exception:  # py4j raises Py4JJavaError wrapping ClassNotFoundException
        return False


def detect_capabilities(spark: SparkSession) -> Capabilities:
    """Whether Delta's and GraphFrames' JVM classes are loadable in this session (cached per session)."""
    cached = getattr(spark, "_cdp_capabilities", None)
    if cached is not None:
        return cached
    caps = Capabilities(delta=_class_loadable(spark, DELTA_CLASS), graphframes=_class_loadable(spark, GRAPHFRAMES_CLASS))
    try:
        spark._cdp_capabilities = caps  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return caps
