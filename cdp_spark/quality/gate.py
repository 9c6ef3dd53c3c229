"""The silver quality gate: Great Expectations suites plus row quarantine, before anything is written.

For every silver table with a suite (``cdp_spark/resources/expectations``):

1. GE validates the table once (one ephemeral context per call, one validation definition per table).
2. Every outcome is appended to ``ops.quality_results`` and GE Data Docs are rebuilt under
   ``<paths.reports>/data_docs/``.
3. A failed ``critical`` expectation raises :class:`QualityGateError`; nothing else is written, so
   silver stays at its previous version.
4. Rows failing an ``error`` expectation are found with Spark predicates built from the same rule
   (GE only reports samples), appended to ``silver.quality_rejects`` and removed from the table.
   ``warn`` failures are only reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.errors import MissingColumnsError, QualityGateError
from cdp_spark.quality.suites import Rule, Suite, load_suites, valid_row, with_severity_overrides

if TYPE_CHECKING:
    from cdp_spark.lake import Lake

log = logging.getLogger(__name__)

RESULTS_TABLE = ("ops", "quality_results")
REJECTS_TABLE = ("silver", "quality_rejects")
DATA_DOCS_KEY = "_data_docs"
# No unexpected-value samples: they would copy personal data (birth dates, contacts, pseudonyms)
# into Data Docs and ops.quality_results, and cost GE two extra Spark jobs per expectation
# (measured: 25 jobs for the orders suite with 5 samples, 9 without). Rejected rows are listed
# by key in silver.quality_rejects instead.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}

RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("expectation", T.StringType(), False),
        T.StructField("expectation_type", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("success", T.BooleanType(), False),
        T.StructField("unexpected_count", T.LongType(), True),
        T.StructField("element_count", T.LongType(), True),
        T.StructField("observed_value", T.StringType(), True),
        T.StructField("validated_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class Outcome:
    """One expectation's result for one run."""

    rule: Rule
    expectation_type: str
    success: bool
    unexpected_count: int | None
    element_count: int | None
    observed: dict[str, Any]

    def as_row(self, run_id: str, validated_at: datetime) -> tuple:
        observed = json.dumps(self.observed, default=str, sort_keys=True)
        return (run_id, self.rule.table, self.rule.name, self.expectation_type, self.rule.severity, self.success,
                self.unexpected_count, self.element_count, observed, validated_at)


def validate_tables(
    spark: SparkSession, cfg: CdpConfig, lake: Lake, tables: dict[str, DataFrame], *, run_id: str
) -> tuple[dict[str, DataFrame], dict[str, str]]:
    """Validate the silver tables about to be written; returns (tables to write, summary).

    The summary maps each table to ``"passed"``, ``"warnings: n"`` and/or ``"rows quarantined: n"``
    (joined by ``", "`` when both apply) and ``"_data_docs"`` to the Data Docs index path.
    Tables are persisted (MEMORY_AND_DISK) unless already cached, so validation, quarantine and the
    caller's write compute each one once.

    Raises:
        QualityGateError: a ``critical`` expectation failed (raised before anything but the
            results and Data Docs is written; the message names every failed table.expectation).
        MissingColumnsError: a table lacks a column its suite checks.
        ConfigError: a suite file or ``silver.quality_severity`` is invalid.
    """
    suites = with_severity_overrides(load_suites(), cfg.silver.quality_severity)
    validated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    summary: dict[str, str] = {}
    checked: dict[str, DataFrame] = {}
    for name, df in tables.items():
        if name not in suites:
            log.warning("quality: no suite for silver.%s (add cdp_spark/resources/expectations/%s.yaml); not validated", name, name)
            summary[name] = "not validated (no suite)"
            continue
        _require_columns(suites[name], df)
        checked[name] = df if df.is_cached else df.persist(StorageLevel.MEMORY_AND_DISK)
    if not checked:
        return dict(tables), summary

    runner = _GxRunner(_docs_dir(cfg))
    outcomes = _validate_all(runner, suites, checked, run_id=run_id, validated_at=validated_at)
    lake.append(*RESULTS_TABLE, spark.createDataFrame([o.as_row(run_id, validated_at) for o in outcomes], RESULTS_SCHEMA))
    docs_index = runner.build_docs()
    if docs_index:
        summary[DATA_DOCS_KEY] = docs_index

    critical = [o for o in outcomes if not o.success and o.rule.severity == "critical"]
    if critical:
        raise QualityGateError(
            "silver quality gate failed, nothing was written (silver stays at its previous version): "
            + "; ".join(f"{o.rule.key} ({_describe(o)})" for o in critical)
            + f". Inspect ops.quality_results for run_id={run_id}"
            + (f" or the Data Docs at {docs_index}" if docs_index else "")
            + "; fix the data or the build, or lower the severity with silver.quality_severity."
        )

    out = dict(tables)
    out.update(checked)
    rejects: list[DataFrame] = []
    persisted: list[DataFrame] = []
    for name, df in checked.items():
        failed = [o.rule for o in outcomes if o.rule.table == name and not o.success]
        errors = [r for r in failed if r.severity == "error"]
        quarantined = 0
        if errors:
            out[name], bad = _split(df, suites[name], errors, today=validated_at.date())
            bad = bad.persist(StorageLevel.MEMORY_AND_DISK)
            persisted.append(bad)
            quarantined = bad.count()
            if quarantined == 0:
                log.warning("quality silver.%s: GE failed %s but no row matches their predicates", name, ", ".join(r.name for r in errors))
            rejects.append(_reject_rows(bad, suites[name], run_id=run_id, rejected_at=validated_at))
        summary[name] = _summary_text(quarantined, sum(1 for r in failed if r.severity == "warn"))
        log.info("quality silver.%s %s", name, summary[name])
    if rejects:
        lake.append(*REJECTS_TABLE, _union(rejects))
    for bad in persisted:
        bad.unpersist()
    return out, summary


def _validate_all(
    runner: _GxRunner, suites: Mapping[str, Suite], tables: Mapping[str, DataFrame], *, run_id: str, validated_at: datetime
) -> list[Outcome]:
    """Run every table's suite once; tables with ``when_rows_in`` rules last, so the row counts
    they depend on (taken from GE's own results, no extra Spark job) are known."""
    outcomes: list[Outcome] = []
    row_counts: dict[str, int] = {}
    for name in sorted(tables, key=lambda n: any(r.when_rows_in for r in suites[n].rules)):
        rules = [r for r in suites[name].rules if _applies(r, row_counts)]
        table_outcomes = runner.validate(suites[name], rules, tables[name], run_id=run_id, validated_at=validated_at)
        row_counts[name] = max(o.element_count or 0 for o in table_outcomes)
        log.info("quality silver.%s rows=%d: %d/%d expectations met", name, row_counts[name], sum(o.success for o in table_outcomes), len(table_outcomes))
        outcomes += table_outcomes
    return outcomes


# --------------------------------------------------------------------------- row-level quarantine


def _split(df: DataFrame, suite: Suite, errors: Sequence[Rule], today: date) -> tuple[DataFrame, DataFrame]:
    """(rows passing every ``error`` rule, failing rows with ``_failed``: the names of the rules they fail)."""
    failed = F.array_compact(F.array(*[F.when(~F.coalesce(valid_row(r, today), F.lit(False)), F.lit(r.name)) for r in errors]))
    annotated = df.withColumn("_failed", failed)
    kept = annotated.where(F.size("_failed") == 0).select(*df.columns)
    bad = annotated.where(F.size("_failed") > 0).select(*suite.keys, "_failed")
    return kept, bad


def _reject_rows(bad: DataFrame, suite: Suite, *, run_id: str, rejected_at: datetime) -> DataFrame:
    """``silver.quality_rejects`` rows: one per failing row and failed rule, keys as a JSON object."""
    return bad.select(
        F.lit(run_id).alias("run_id"),
        F.lit(suite.table).alias("table"),
        F.to_json(F.struct(*suite.keys)).alias("record_key"),
        F.explode("_failed").alias("expectation"),
        F.lit("error").alias("severity"),
        F.lit(rejected_at).cast("timestamp").alias("rejected_at"),
    )


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


# --------------------------------------------------------------------------- helpers


def _require_columns(suite: Suite, df: DataFrame) -> None:
    needed = {c for r in suite.rules for c in r.referenced_columns} | set(suite.keys)
    missing = needed - set(df.columns)
    if missing:
        raise MissingColumnsError(missing, where=f"silver.{suite.table} (checked by its quality suite)")


def _applies(rule: Rule, row_counts: Mapping[str, int]) -> bool:
    if not rule.when_rows_in or any(row_counts.get(t, 0) > 0 for t in rule.when_rows_in):
        return True
    log.info("quality: %s skipped, none of %s has rows", rule.key, ", ".join(rule.when_rows_in))
    return False


def _describe(outcome: Outcome) -> str:
    if "exception" in outcome.observed:
        return f"could not be evaluated: {outcome.observed['exception']}"
    if outcome.unexpected_count is not None:
        return f"{outcome.unexpected_count} of {outcome.element_count} rows unexpected"
    return f"observed {outcome.observed.get('observed_value')!r}"


def _summary_text(quarantined: int, warnings: int) -> str:
    parts = ([f"rows quarantined: {quarantined}"] if quarantined else []) + ([f"warnings: {warnings}"] if warnings else [])
    return ", ".join(parts) or "passed"


def _docs_dir(cfg: CdpConfig) -> Path | None:
    reports = cfg.paths.reports.removeprefix("file://")
    if "://" in reports:
        log.warning("quality: Data Docs are only built for a local reports path, not %s", reports)
        return None
    return Path(reports) / "data_docs"


# --------------------------------------------------------------------------- Great Expectations


class _GxRunner:
    """One ephemeral GE context per gate run (creating it and importing GE take seconds)."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

        self._gx = gx
        self._docs_dir = docs_dir
        sites = {}
        if docs_dir is not None:
            sites["cdp"] = {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        project = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites=sites,
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self._context = gx.get_context(project_config=project, mode="ephemeral")
        self._source = self._context.data_sources.add_spark(name="silver", persist=False)

    def validate(
        self, suite: Suite, rules: Sequence[Rule], df: DataFrame, *, run_id: str, validated_at: datetime
    ) -> list[Outcome]:
        """Validate ``df`` with ``rules`` as the GE suite ``silver.<table>``; one outcome per rule."""
        from great_expectations.core.run_identifier import RunIdentifier

        gx = self._gx
        batch = self._source.add_dataframe_asset(name=suite.table).add_batch_definition_whole_dataframe("whole_table")
        expectations = [_expectation(rule, validated_at.date()) for rule in rules]
        gx_suite = self._context.suites.add(
            gx.ExpectationSuite(name=f"silver.{suite.table}", expectations=expectations, notes=suite.description or None)
        )
        definition = self._context.validation_definitions.add(gx.ValidationDefinition(name=f"silver.{suite.table}", data=batch, suite=gx_suite))
        result = definition.run(
            batch_parameters={"dataframe": df},
            result_format=_RESULT_FORMAT,
            run_id=RunIdentifier(run_name=run_id, run_time=validated_at.replace(tzinfo=timezone.utc)),
        )
        by_name = {r.name: r for r in rules}
        return [_outcome(by_name[res.expectation_config.meta["cdp_name"]], res) for res in result.results]

    def build_docs(self) -> str | None:
        if self._docs_dir is None:
            return None
        self._context.build_data_docs(site_names=["cdp"])
        return str(self._docs_dir / "index.html")


def _expectation(rule: Rule, today: date) -> Any:
    import great_expectations.expectations as gxe

    meta = {"cdp_name": rule.name, "severity": rule.severity}
    low, high = rule.bounds(today)
    if rule.check == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=rule.column, meta=meta)
    if rule.check == "match_regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=rule.column, regex=rule.regex, meta=meta)
    if rule.check == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=rule.column, value_set=list(rule.values), meta=meta)
    if rule.check == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=rule.column, min_value=low, max_value=high, strict_min=rule.strict_min, strict_max=rule.strict_max, meta=meta
        )
    if rule.check == "unique" and len(rule.columns) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=rule.columns[0], meta=meta)
    if rule.check == "unique":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns), meta=meta)
    return gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high, meta=meta)


def _outcome(rule: Rule, res: Any) -> Outcome:
    result = dict(res.result or {})
    observed = {k: result[k] for k in ("observed_value", "unexpected_percent") if k in result}
    message = _exception_message(res.exception_info or {})
    if message:
        observed["exception"] = message
    element_count = result.get("element_count")
    if element_count is None and isinstance(result.get("observed_value"), int):
        element_count = result["observed_value"]  # table row count
    unexpected = result.get("unexpected_count")
    return Outcome(
        rule=rule,
        expectation_type=res.expectation_config.type,
        success=bool(res.success),
        unexpected_count=None if unexpected is None else int(unexpected),
        element_count=None if element_count is None else int(element_count),
        observed=observed,
    )


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """GE reports one exception as a flat dict, several as a dict of them keyed by metric."""
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    messages = [str(v.get("exception_message")) for v in info.values() if isinstance(v, Mapping) and v.get("raised_exception")]
    return "; ".join(messages) or None
