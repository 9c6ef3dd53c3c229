"""Reporting: the HTML run report, and the run-metadata readers it and the notebooks share."""

from cdp_spark.reporting.report import build_run_report
from cdp_spark.reporting.sections import latest_run_id, model_runs, segment_sizes

__all__ = ["build_run_report", "latest_run_id", "model_runs", "segment_sizes"]
