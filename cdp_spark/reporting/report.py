"""The HTML run report: what one pipeline run did, as a page a person opens in a browser."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from cdp_spark.config import CdpConfig
from cdp_spark.errors import CdpError
from cdp_spark.reporting._html import ReportData, render
from cdp_spark.reporting.sections import (
    checked_run_id,
    identity_summary,
    latest_run_id,
    model_runs,
    quality_summary,
    segment_sizes,
    stage_rows,
)

log = logging.getLogger(__name__)


def report_path(cfg: CdpConfig, run_id: str) -> Path:
    """``<paths.reports>/run_<run_id>.html``; the reports path must be local."""
    reports = cfg.paths.reports.removeprefix("file://")
    if "://" in reports:
        raise CdpError(f"paths.reports={cfg.paths.reports!r}: the run report is written to a local directory; point paths.reports at one")
    return Path(reports) / f"run_{checked_run_id(run_id)}.html"


def build_run_report(spark: SparkSession, cfg: CdpConfig, run_id: str | None = None) -> Path:
    """Write the self-contained HTML report of ``run_id`` (the latest run in ``ops.run_log`` by default).

    Sections: stage timings and rows, data quality (with a link to the GE Data Docs), identity
    metrics with the component-size histogram, segment sizes, and model metrics with their plots.
    A section whose table or MLflow runs are missing says so instead of failing the report.
    Returns the path of ``<paths.reports>/run_<run_id>.html``.
    """
    run_id = run_id or latest_run_id(spark, cfg)
    path = report_path(cfg, run_id)
    data = ReportData(
        run_id=run_id,
        generated_at=datetime.now(timezone.utc),
        stages=stage_rows(spark, cfg, run_id),
        quality=quality_summary(spark, cfg, run_id),
        identity=identity_summary(spark, cfg, run_id),
        segments=segment_sizes(spark, cfg, run_id),
        models=model_runs(cfg, run_id, with_plots=True),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data, path.parent), encoding="utf-8")
    log.info("run report for %s written to %s", run_id, path)
    return path
