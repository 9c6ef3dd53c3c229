"""Thin adapter over GraphFrames' connectedComponents (needs the GraphFrames jar on the classpath).

AQE pitfall (GraphFrames issues #428 and #453, Spark >= 3.5): GraphFrames indexes vertices with
monotonically_increasing_id(); when adaptive execution coalesces the partitions feeding that
expression, distinct vertices can get the same long id and unrelated components merge silently.
Users reported that disabling ``spark.sql.adaptive.enabled`` fixes it, and that doing so only
"before the call" is not enough when the result is evaluated lazily afterwards. So this adapter
(1) checkpoints the vertex and edge inputs, so every recomputation sees the same partitions
(issue #159), (2) turns AQE off for the whole run, (3) materializes the result with a checkpoint
while AQE is still off, and (4) restores the caller's setting. The setting is session-wide: do not
run other queries on the same session concurrently with this engine.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.identity._cc_native import break_lineage, default_max_rounds, release_checkpoint

log = logging.getLogger(__name__)

_AQE = "spark.sql.adaptive.enabled"
# Rounds bound when the caller passes none and the node count is unknown up front.
_DEFAULT_MAX_ITER = default_max_rounds(2**40)


def run_graphframes(pairs: DataFrame, *, max_rounds: int | None, checkpoint: str) -> DataFrame:
    """Components of the id pairs ``(a, b)`` with GraphFrames, relabelled to the smallest node id.

    ``max_iter`` is always passed explicitly; GraphFrames 0.12 only enforces it for its ``graphx``
    algorithm, the ``two_phase`` algorithm used here runs to convergence.
    """
    from graphframes import GraphFrame  # the Python package is installed; its JVM side may not be

    spark = pairs.sparkSession
    previous_aqe = spark.conf.get(_AQE)
    spark.conf.set(_AQE, "false")
    try:
        vertices = break_lineage(pairs.select(F.col("a").alias("id")).union(pairs.select("b")).distinct(), checkpoint)
        edges = break_lineage(pairs.filter(F.col("a") != F.col("b")).select(F.col("a").alias("src"), F.col("b").alias("dst")), checkpoint)
        labelled = GraphFrame(vertices, edges).connectedComponents(
            algorithm="two_phase",
            checkpointInterval=1,
            use_local_checkpoints=checkpoint == "local",
            max_iter=max_rounds if max_rounds is not None else _DEFAULT_MAX_ITER,
        )
        result = labelled.select(
            F.col("id").alias("node"), F.min("id").over(Window.partitionBy("component")).alias("component")
        )
        result = break_lineage(result, checkpoint)
        release_checkpoint(vertices)
        release_checkpoint(edges)
    finally:
        spark.conf.set(_AQE, previous_aqe)
    log.info("connected components engine=graphframes done (AQE restored to %s)", previous_aqe)
    return result
