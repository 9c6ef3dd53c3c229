"""What the run report shows, read from the run's metadata: small values that fit on the driver.

Each reader returns its section's data, or :class:`Unavailable` with the reason when the table,
store or rows it needs are missing for this run, so the report degrades section by section.
"""

from __future__ import annotations

import ast
import logging
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig
from cdp_spark.errors import CdpError
from cdp_spark.identity.resolve import HISTOGRAM_BUCKETS
from cdp_spark.ops import lake_for

log = logging.getLogger(__name__)

CLASSIFIER_METRICS = ("roc_auc", "pr_auc", "log_loss", "calibration_error", "lift_top_decile", "lift_top_2_deciles", "base_rate", "n")
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Unavailable:
    """A section that cannot be shown for this run, and why."""

    reason: str


@dataclass(frozen=True)
class StageRow:
    stage: str
    status: str
    started_at: datetime
    ended_at: datetime
    seconds: float
    rows_in: int
    rows_out: int
    error: str | None
    attempts: int  # rows in ops.run_log for this stage and run (a rerun appends another)


@dataclass(frozen=True)
class TableQuality:
    table: str
    expectations: int
    passed: int
    failed: dict[str, int]  # severity -> failed expectations


@dataclass(frozen=True)
class FailedExpectation:
    table: str
    expectation: str
    severity: str
    unexpected_count: int | None
    element_count: int | None
    observed_value: str | None


@dataclass(frozen=True)
class QualitySummary:
    tables: list[TableQuality]
    failures: list[FailedExpectation]
    data_docs_index: Path | None  # None when Data Docs were not built


@dataclass(frozen=True)
class IdentitySummary:
    computed_at: datetime
    customers: int
    largest_component_records: int
    components_over_alarm: int
    merges: int
    splits: int
    blocklisted: int
    size_histogram: dict[str, int] | None  # bucket -> customers; None when the stored text cannot be read


@dataclass(frozen=True)
class ModelRun:
    experiment: str
    task: str
    kind: str  # logistic_regression | gbt | clv
    mlflow_run_id: str
    run_name: str
    metrics: dict[str, float]
    plots: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes


@dataclass(frozen=True)
class Champion:
    task: str
    model: str
    version: str
    mlflow_run_id: str


@dataclass(frozen=True)
class ModelsSummary:
    runs: list[ModelRun]
    champions: dict[str, Champion]  # task -> current champion (from any run)


def checked_run_id(run_id: str) -> str:
    """``run_id`` if it is safe in a file name; a CdpError otherwise."""
    if not _SAFE_RUN_ID.match(run_id or ""):
        raise CdpError(f"run id {run_id!r} cannot name a report file: use letters, digits, '.', '_' and '-'")
    return run_id


def latest_run_id(spark: SparkSession, cfg: CdpConfig) -> str:
    """The run id of the most recently started stage in ``ops.run_log``."""
    from cdp_spark.ops import recent_runs

    row = recent_runs(spark, cfg, limit=1).select("run_id").first()
    if row is None:
        raise CdpError(f"no runs recorded in ops.run_log under {cfg.paths.lakehouse}; run the pipeline first (cdp run)")
    return row["run_id"]


def stage_rows(spark: SparkSession, cfg: CdpConfig, run_id: str) -> list[StageRow] | Unavailable:
    """The latest attempt of each stage of ``run_id``, in the order the stages started."""
    lake = lake_for(spark, cfg)
    if not lake.exists("ops", "run_log"):
        return Unavailable("ops.run_log does not exist (no run has been recorded in this lakehouse)")
    rows = lake.read("ops", "run_log").where(F.col("run_id") == run_id).orderBy("started_at", "ended_at").collect()
    if not rows:
        return Unavailable(f"ops.run_log has no stage for run {run_id}")
    latest: dict[str, Any] = {}
    attempts: dict[str, int] = {}
    for r in rows:
        latest[r["stage"]] = r
        attempts[r["stage"]] = attempts.get(r["stage"], 0) + 1
    ordered = sorted(latest.values(), key=lambda r: r["started_at"])
    return [
        StageRow(r["stage"], r["status"], r["started_at"], r["ended_at"], float(r["seconds"]), int(r["rows_in"]), int(r["rows_out"]), r["error"], attempts[r["stage"]])
        for r in ordered
    ]


def quality_summary(spark: SparkSession, cfg: CdpConfig, run_id: str) -> QualitySummary | Unavailable:
    """Expectation outcomes of ``run_id`` per table from ``ops.quality_results``, and the Data Docs index."""
    lake = lake_for(spark, cfg)
    if not lake.exists("ops", "quality_results"):
        return Unavailable("ops.quality_results does not exist (the silver quality gate has not run in this lakehouse)")
    results = lake.read("ops", "quality_results").where(F.col("run_id") == run_id)
    per_table = (
        results.groupBy("table", "severity")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.when(F.col("success"), 1).otherwise(0)).alias("passed"))
        .orderBy("table", "severity")
        .collect()
    )
    if not per_table:
        return Unavailable(f"ops.quality_results has no expectation results for run {run_id}")
    tables: dict[str, dict[str, Any]] = {}
    for r in per_table:
        t = tables.setdefault(r["table"], {"expectations": 0, "passed": 0, "failed": {}})
        t["expectations"] += int(r["n"])
        t["passed"] += int(r["passed"])
        if r["n"] > r["passed"]:
            t["failed"][r["severity"]] = int(r["n"] - r["passed"])
    failures = [
        FailedExpectation(r["table"], r["expectation"], r["severity"], r["unexpected_count"], r["element_count"], r["observed_value"])
        for r in results.where(~F.col("success")).orderBy("table", "expectation").collect()
    ]
    index = _data_docs_index(cfg)
    return QualitySummary([TableQuality(name, v["expectations"], v["passed"], v["failed"]) for name, v in tables.items()], failures, index)


def _data_docs_index(cfg: CdpConfig) -> Path | None:
    reports = cfg.paths.reports.removeprefix("file://")
    index = Path(reports) / "data_docs" / "index.html"
    return index if "://" not in reports and index.is_file() else None


def identity_summary(spark: SparkSession, cfg: CdpConfig, run_id: str) -> IdentitySummary | Unavailable:
    """The identity stage's metrics for ``run_id`` from ``gold.identity_metrics`` (its latest row)."""
    lake = lake_for(spark, cfg)
    if not lake.exists("gold", "identity_metrics"):
        return Unavailable("gold.identity_metrics does not exist (the identity stage has not run in this lakehouse)")
    row = lake.read("gold", "identity_metrics").where(F.col("run_id") == run_id).orderBy(F.col("computed_at").desc()).first()
    if row is None:
        return Unavailable(f"gold.identity_metrics has no row for run {run_id}")
    return IdentitySummary(
        computed_at=row["computed_at"],
        customers=int(row["customers"]),
        largest_component_records=int(row["largest_component_records"]),
        components_over_alarm=int(row["components_over_alarm"]),
        merges=int(row["merges"]),
        splits=int(row["splits"]),
        blocklisted=int(row["blocklisted"]),
        size_histogram=_parse_histogram(row["size_histogram"]),
    )


def _parse_histogram(text: str | None) -> dict[str, int] | None:
    """The stored ``str(dict)`` of bucket -> count, in bucket order; None if it is not such a dict."""
    try:
        value = ast.literal_eval(text or "")
    except (ValueError, SyntaxError):
        log.warning("identity_metrics.size_histogram is not a dict literal: %r", text)
        return None
    if not isinstance(value, dict):
        return None
    known = [b for b in HISTOGRAM_BUCKETS if b in value] + sorted(str(b) for b in value if b not in HISTOGRAM_BUCKETS)
    return {str(b): int(value[b]) for b in known}


def segment_sizes(spark: SparkSession, cfg: CdpConfig, run_id: str | None = None) -> dict[str, int] | Unavailable:
    """Current members per segment (``exited_at`` NULL) in ``gold.segment_membership``.

    With ``run_id``: as of the table version that run wrote (Delta time travel), so an older run's
    report shows that run's segments; without: the latest version. Configured segments with no
    member are listed with 0.
    """
    lake = lake_for(spark, cfg)
    if not lake.exists("gold", "segment_membership"):
        return Unavailable("gold.segment_membership does not exist (the gold stage has not run in this lakehouse)")
    version = None
    if run_id is not None:
        written = [h["version"] for h in lake.history("gold", "segment_membership") if h["run_id"] == run_id]
        if not written:
            return Unavailable(f"run {run_id} did not write gold.segment_membership")
        version = max(written)
    members = lake.read("gold", "segment_membership", version=version).where(F.col("exited_at").isNull())
    counts = {r["segment"]: int(r["n"]) for r in members.groupBy("segment").agg(F.count(F.lit(1)).alias("n")).collect()}
    sizes = {s.name: counts.pop(s.name, 0) for s in cfg.gold.segments}
    sizes.update(sorted(counts.items()))  # segments no longer configured but still holding members
    return sizes


def _local_tracking_store(cfg: CdpConfig) -> Path | None:
    uri = cfg.paths.mlflow_tracking_uri
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def model_runs(cfg: CdpConfig, run_id: str | None = None, *, with_plots: bool = False) -> ModelsSummary | Unavailable:
    """MLflow runs of the ``cdp-<task>`` and ``cdp-clv`` experiments (tagged ``cdp.run_id`` = ``run_id``
    when given), their metrics and, with ``with_plots``, their ``plots/*.png``; and each task's champion."""
    store = _local_tracking_store(cfg)
    if store is not None and not store.is_file():
        return Unavailable(f"no MLflow tracking store at {store} (the train stage has not run)")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from cdp_spark.models.datasets import TASKS
    from cdp_spark.models.train import model_name

    client = MlflowClient(tracking_uri=cfg.paths.mlflow_tracking_uri, registry_uri=cfg.paths.mlflow_tracking_uri)
    tasks = {f"cdp-{t}": t for t in (*TASKS, "clv")}
    experiments = {e.experiment_id: e.name for e in (client.get_experiment_by_name(n) for n in tasks) if e is not None}
    if not experiments:
        return Unavailable(f"MLflow at {cfg.paths.mlflow_tracking_uri} has none of the experiments {', '.join(tasks)}")
    query = f"tags.`cdp.run_id` = '{checked_run_id(run_id)}'" if run_id is not None else ""
    found = client.search_runs(list(experiments), filter_string=query, order_by=["attributes.start_time ASC"], max_results=1000)
    if not found:
        return Unavailable(f"MLflow has no run tagged cdp.run_id={run_id}")
    runs = []
    for r in found:
        task = tasks[experiments[r.info.experiment_id]]
        kind = r.data.params.get("model", "clv" if task == "clv" else "unknown")
        plots = _plots(client, r.info.run_id) if with_plots else {}
        runs.append(ModelRun(experiments[r.info.experiment_id], task, kind, r.info.run_id, r.info.run_name or "", dict(r.data.metrics), plots))
    champions = {}
    for task in TASKS:
        name = model_name(cfg, task)
        try:
            version = client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            continue
        champions[task] = Champion(task, name, str(version.version), version.run_id)
    return ModelsSummary(runs, champions)


def _plots(client: Any, mlflow_run_id: str) -> dict[str, bytes]:
    """The run's ``plots/*.png`` artifacts as bytes, by file name."""
    if not any(a.path.endswith(".png") for a in client.list_artifacts(mlflow_run_id, "plots")):
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(mlflow_run_id, "plots", tmp))
        return {png.name: png.read_bytes() for png in sorted(local.glob("*.png"))}
