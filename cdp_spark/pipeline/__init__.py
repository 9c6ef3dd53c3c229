"""Runs the stages in order and records what each did.

Stages are looked up lazily so that ``import cdp_spark.pipeline`` stays cheap (MLflow and Great
Expectations are only imported by the stages that use them).
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pyspark.sql import SparkSession

from cdp_spark.config import CdpConfig
from cdp_spark.errors import CdpError

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("bronze", "silver", "identity", "gold", "train", "score")

# stage name -> "module:function"; every function is f(spark, cfg, *, run_id, run_date) -> report
_STAGE_FUNCTIONS = {
    "bronze": "cdp_spark.ingest:run_bronze",
    "silver": "cdp_spark.pipeline.silver:run_silver",
    "identity": "cdp_spark.identity.resolve:run_identity",
    "gold": "cdp_spark.profiles.stage:run_gold",
    "train": "cdp_spark.models.train:run_train",
    "score": "cdp_spark.models.score:run_score",
}


@dataclass(frozen=True)
class StageResult:
    stage: str
    run_id: str
    status: str  # "succeeded" | "failed"
    rows_in: int
    rows_out: int
    seconds: float
    started_at: datetime
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        text = f"[{self.stage:<8}] {self.status:<9} rows in={self.rows_in:>10,} out={self.rows_out:>10,}  {self.seconds:7.1f}s"
        return text + (f"  error: {self.error}" if self.error else "")


def new_run_id(run_date: date | None = None) -> str:
    day = (run_date or datetime.now(timezone.utc).date()).strftime("%Y%m%d")
    return f"{day}-{uuid.uuid4().hex[:10]}"


def stage_function(stage: str) -> Callable[..., Any]:
    if stage not in _STAGE_FUNCTIONS:
        raise CdpError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    module_name, func_name = _STAGE_FUNCTIONS[stage].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _persisted_rdd_ids(spark: SparkSession) -> set[int]:
    return {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()}


def _release_stage_rdds(spark: SparkSession, before: set[int], stage: str) -> None:
    """Unpersist what the stage cached or checkpointed locally and left behind (a long-lived session,
    e.g. a notebook or the benchmark, would otherwise hold every stage's intermediates); RDDs that
    were persisted before the stage, such as the caller's own caches, are left alone."""
    rdds = spark.sparkContext._jsc.getPersistentRDDs()
    left = [i for i in (int(k) for k in rdds.keySet()) if i not in before]
    for rdd_id in left:
        rdds.get(rdd_id).unpersist(False)
    if left:
        log.debug("stage %s: released %d persisted RDD(s) it left behind", stage, len(left))


def run_stage(spark: SparkSession, cfg: CdpConfig, stage: str, *, run_id: str, run_date: date | None = None) -> StageResult:
    """Run one stage and return its result; failures are returned, not raised (see ``run_pipeline``)."""
    func = stage_function(stage)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    log.info("stage %s starting run_id=%s", stage, run_id)
    held_before = _persisted_rdd_ids(spark)
    try:
        report = func(spark, cfg, run_id=run_id, run_date=run_date)
    except CdpError as err:
        log.error("stage %s failed: %s", stage, err)
        return StageResult(stage, run_id, "failed", 0, 0, time.perf_counter() - t0, started, error=str(err))
    except Exception as err:  # an unexpected failure is still recorded in the run log
        log.exception("stage %s failed unexpectedly", stage)
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return StageResult(stage, run_id, "failed", 0, 0, time.perf_counter() - t0, started, error=message)
    except SystemExit as err:
        # A library exiting the interpreter half way through a stage must not pass for success (exit
        # status 0). pyspark.sql.connect does so on import when ``__main__`` has no file (``python -c``).
        log.exception("stage %s: sys.exit(%r) was called inside the stage", stage, err.code)
        message = f"SystemExit({err.code!r}) raised inside the stage (run cdp from a file or the cdp command, not python -c)"
        return StageResult(stage, run_id, "failed", 0, 0, time.perf_counter() - t0, started, error=message)
    finally:
        _release_stage_rdds(spark, held_before, stage)
    seconds = time.perf_counter() - t0
    details = report.as_dict() if hasattr(report, "as_dict") else {}
    result = StageResult(
        stage, run_id, "succeeded", int(getattr(report, "rows_in", 0) or 0), int(getattr(report, "rows_out", 0) or 0), seconds, started, details=details
    )
    log.info("stage %s done rows_in=%d rows_out=%d seconds=%.1f", stage, result.rows_in, result.rows_out, seconds)
    return result


def run_pipeline(
    spark: SparkSession,
    cfg: CdpConfig,
    *,
    stages: Sequence[str] | None = None,
    run_id: str | None = None,
    run_date: date | None = None,
    on_result: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Run ``stages`` (all by default) in pipeline order, stopping at the first failure."""
    wanted = list(stages) if stages else list(STAGES)
    for name in wanted:
        stage_function(name)  # validate names before doing any work
    ordered = [s for s in STAGES if s in wanted]
    run_id = run_id or new_run_id(run_date)
    results: list[StageResult] = []
    from cdp_spark.ops import record_stage_result  # local: ops imports the lake
    from cdp_spark.runlock import RunLock

    with RunLock.for_config(cfg, run_id=run_id):
        for name in ordered:
            result = run_stage(spark, cfg, name, run_id=run_id, run_date=run_date)
            record_stage_result(spark, cfg, result)
            results.append(result)
            if on_result:
                on_result(result)
            if result.status != "succeeded":
                break
    return results
