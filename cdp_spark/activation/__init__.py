"""Activation: consent-aware, hashed-identifier exports of segment members to destinations."""

from cdp_spark.activation.exports import (
    ExportResult,
    check_export,
    contact_rows,
    export_delta,
    export_rows,
    hashed_contacts,
    run_exports,
)

__all__ = ["ExportResult", "check_export", "contact_rows", "export_delta", "export_rows", "hashed_contacts", "run_exports"]
