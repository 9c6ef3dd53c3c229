"""Bronze ingestion: landing files (CSV, JSON lines, Parquet) into Delta bronze tables, by config.

``run_bronze(spark, cfg, run_id=...)`` is the entry point; see docs/bronze.md for the layout.
"""

from cdp_spark.ingest.bronze import BronzeReport, IngestCountError, SourceReport, run_bronze

__all__ = ["BronzeReport", "IngestCountError", "SourceReport", "run_bronze"]
