"""Data-quality gates for silver: Great Expectations suites versioned with the code.

Suites live in ``cdp_spark/resources/expectations/<table>.yaml``; see ``docs/quality.md``.
Great Expectations is imported only when a gate runs.
"""

from cdp_spark.quality.gate import validate_tables

__all__ = ["validate_tables"]
