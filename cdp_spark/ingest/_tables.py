"""Schemas and names of the tables bronze writes besides ``bronze.<source>``."""

from __future__ import annotations

from pyspark.sql import types as T

OPS = "ops"
BRONZE = "bronze"
LOG_TABLE = "ingestion_log"
DRIFT_TABLE = "bronze_schema_drift"
QUARANTINE_TABLE = "quarantine"

STATUS_PLANNED = "planned"
STATUS_INGESTED = "ingested"

LOG_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("file_path", T.StringType()),
        T.StructField("file_size", T.LongType()),
        T.StructField("file_mtime", T.TimestampType()),
        T.StructField("content_hash", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("batch", T.LongType()),
        T.StructField("redelivery", T.BooleanType()),
        T.StructField("file_issue", T.StringType()),
        T.StructField("ends_with_newline", T.BooleanType()),
        T.StructField("rows_read", T.LongType()),
        T.StructField("rows_bronze", T.LongType()),
        T.StructField("rows_quarantined", T.LongType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("logged_at", T.TimestampType()),
        T.StructField("rows_suppressed", T.LongType()),  # rows of erased subjects kept out at intake
    ]
)

DRIFT_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("file_path", T.StringType()),
        T.StructField("column", T.StringType()),
        T.StructField("old_type", T.StringType()),
        T.StructField("new_type", T.StringType()),
        T.StructField("action", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("batch", T.LongType()),
        T.StructField("detected_at", T.TimestampType()),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("file_path", T.StringType()),
        T.StructField("line", T.LongType()),
        T.StructField("level", T.StringType()),  # "record" or "file"
        T.StructField("reason", T.StringType()),
        T.StructField("raw", T.StringType()),
        T.StructField("raw_encoding", T.StringType()),  # "utf-8" or "base64"
        T.StructField("run_id", T.StringType()),
        T.StructField("batch", T.LongType()),
        T.StructField("ingested_at", T.TimestampType()),
        T.StructField("ingest_date", T.DateType()),
    ]
)
QUARANTINE_PARTITION_BY = ("source",)

# Metadata columns of every bronze.<source> table, in order (after the source's own columns).
METADATA_COLUMNS = (
    "_source",
    "_file_path",
    "_file_size",
    "_file_mtime",
    "_file_hash",
    "_line",
    "_run_id",
    "_ingested_at",
    "_country",
    "_record_key",
    "_redelivery",
    "_rescued_data",
    "_batch",
    "ingest_date",
)
