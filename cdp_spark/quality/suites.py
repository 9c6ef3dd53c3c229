"""Quality suites for the silver tables, loaded from ``cdp_spark/resources/expectations/<table>.yaml``.

A suite is a list of named rules. Each rule is the single definition behind two evaluations:
the Great Expectations expectation that reports it (:mod:`cdp_spark.quality.gate`) and the Spark
predicate that finds every failing row (:func:`valid_row`), because GE only reports samples.
Rule checks and what they mean (nulls pass every check except ``not_null``, as in GE):

* ``not_null``           ``column`` is not null
* ``match_regex``        ``column`` matches ``regex``
* ``in_set``             ``column`` is one of ``values``
* ``between``            ``min <= column <= max`` (``strict_min``/``strict_max`` for ``<``); a bound
                         may be a date (``1900-01-01``) or ``today``
* ``unique``             the combination of ``columns`` occurs once (rows whose columns are all null are ignored)
* ``row_count_between``  table-level: ``min <= rows <= max``; with ``when_rows_in`` only checked when
                         one of those tables has rows

Severities: ``critical`` fails the whole gate, ``error`` quarantines the failing rows, ``warn``
only reports. ``cfg.silver.quality_severity["<table>.<rule name>"]`` overrides a suite's default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import reduce
from importlib import resources
from typing import Any

import yaml
from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from cdp_spark.errors import ConfigError

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "error", "warn")
ROW_CHECKS = ("not_null", "match_regex", "in_set", "between", "unique")
TABLE_CHECKS = ("row_count_between",)
_RULE_KEYS = {"name", "check", "severity", "column", "columns", "regex", "values", "min", "max", "strict_min", "strict_max", "when_rows_in"}
_SUITE_KEYS = {"table", "description", "keys", "expectations"}


@dataclass(frozen=True)
class Rule:
    """One named expectation of a table's suite."""

    table: str
    name: str
    check: str
    severity: str
    column: str | None = None
    columns: tuple[str, ...] = ()
    regex: str | None = None
    values: tuple[Any, ...] = ()
    min: Any = None
    max: Any = None
    strict_min: bool = False
    strict_max: bool = False
    when_rows_in: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``<table>.<name>``, the key of ``cfg.silver.quality_severity``."""
        return f"{self.table}.{self.name}"

    @property
    def row_level(self) -> bool:
        return self.check in ROW_CHECKS

    @property
    def referenced_columns(self) -> tuple[str, ...]:
        return self.columns if self.check == "unique" else ((self.column,) if self.column else ())

    def bounds(self, today: date) -> tuple[Any, Any]:
        """``min``/``max`` with ``today`` resolved."""
        return _resolve_bound(self.min, today), _resolve_bound(self.max, today)


@dataclass(frozen=True)
class Suite:
    """The rules of one silver table; ``keys`` identify a row in ``silver.quality_rejects``."""

    table: str
    keys: tuple[str, ...]
    rules: tuple[Rule, ...]
    description: str = ""


def _resolve_bound(value: Any, today: date) -> Any:
    if value == "today":
        return today
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"quality bound {value!r}: use a number, an ISO date or 'today'") from None
    return value


def _parse_rule(table: str, raw: Mapping[str, Any], origin: str) -> Rule:
    where = f"{origin}: expectation {raw.get('name', '<unnamed>')!r}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_RULE_KEYS))})")
    for required in ("name", "check", "severity"):
        if not raw.get(required):
            raise ConfigError(f"{where}: '{required}' is required")
    check, severity = raw["check"], raw["severity"]
    if check not in ROW_CHECKS + TABLE_CHECKS:
        raise ConfigError(f"{where}: check {check!r} is not one of {', '.join(ROW_CHECKS + TABLE_CHECKS)}")
    rule = Rule(
        table=table,
        name=str(raw["name"]),
        check=check,
        severity=severity,
        column=raw.get("column"),
        columns=tuple(raw.get("columns") or ()),
        regex=raw.get("regex"),
        values=tuple(raw.get("values") or ()),
        min=raw.get("min"),
        max=raw.get("max"),
        strict_min=bool(raw.get("strict_min", False)),
        strict_max=bool(raw.get("strict_max", False)),
        when_rows_in=tuple(raw.get("when_rows_in") or ()),
    )
    _check_rule(rule, where)
    return rule


def _check_rule(rule: Rule, where: str) -> None:
    if rule.severity not in SEVERITIES:
        raise ConfigError(f"{where}: severity {rule.severity!r} is not one of {', '.join(SEVERITIES)}")
    if not rule.row_level and rule.severity == "error":
        raise ConfigError(f"{where}: a table-level check has no rows to quarantine; use severity critical or warn")
    needs = {
        "not_null": rule.column,
        "match_regex": rule.column and rule.regex,
        "in_set": rule.column and rule.values,
        "between": rule.column and (rule.min is not None or rule.max is not None),
        "unique": rule.columns,
        "row_count_between": rule.min is not None or rule.max is not None,
    }
    if not needs[rule.check]:
        raise ConfigError(f"{where}: check {rule.check!r} is missing its arguments (see cdp_spark/quality/suites.py)")
    _resolve_bound(rule.min, date.today())
    _resolve_bound(rule.max, date.today())


def parse_suite(data: Mapping[str, Any], origin: str = "<suite>") -> Suite:
    """Validate one suite document (the content of a suite YAML file)."""
    if not isinstance(data, Mapping) or not data.get("table"):
        raise ConfigError(f"{origin}: a suite is a mapping with 'table', 'keys' and 'expectations'")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_SUITE_KEYS))})")
    table = str(data["table"])
    rules = tuple(_parse_rule(table, raw, origin) for raw in data.get("expectations") or ())
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{origin}: expectation names must be unique within a suite, repeated: {', '.join(duplicates)}")
    if not any(not r.when_rows_in for r in rules):
        raise ConfigError(f"{origin}: a suite needs at least one expectation without 'when_rows_in'")
    keys = tuple(data.get("keys") or ())
    if not keys:
        raise ConfigError(f"{origin}: 'keys' (the columns identifying a row) is required")
    return Suite(table=table, keys=keys, rules=rules, description=str(data.get("description", "")))


def load_suites() -> dict[str, Suite]:
    """Every suite shipped in ``cdp_spark/resources/expectations``, by table name."""
    suites: dict[str, Suite] = {}
    folder = resources.files("cdp_spark") / "resources" / "expectations"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        origin = f"expectations/{entry.name}"
        try:
            suite = parse_suite(yaml.safe_load(entry.read_text(encoding="utf-8")), origin)
        except yaml.YAMLError as err:
            raise ConfigError(f"{origin} is not valid YAML: {err}") from None
        if suite.table in suites:
            raise ConfigError(f"{origin}: a second suite for table {suite.table!r}")
        suites[suite.table] = suite
    conditional = {s.table for s in suites.values() if any(r.when_rows_in for r in s.rules)}
    for rule in (r for s in suites.values() for r in s.rules):
        if conditional & set(rule.when_rows_in):
            raise ConfigError(f"{rule.key}: when_rows_in may only name tables whose suites have no when_rows_in rule")
    return suites


def with_severity_overrides(suites: Mapping[str, Suite], overrides: Mapping[str, str]) -> dict[str, Suite]:
    """Apply ``cfg.silver.quality_severity`` (``"table.rule" -> severity``); unknown keys are errors."""
    known = {r.key for s in suites.values() for r in s.rules}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"silver.quality_severity: unknown expectation(s) {', '.join(unknown)}; "
            f"keys are '<table>.<expectation>' as named in cdp_spark/resources/expectations (e.g. {min(known, default='orders.amount_non_negative')})"
        )
    out = {}
    for table, suite in suites.items():
        rules = []
        for rule in suite.rules:
            if rule.key in overrides:
                rule = replace(rule, severity=overrides[rule.key])
                _check_rule(rule, f"silver.quality_severity[{rule.key!r}]")
            rules.append(rule)
        out[table] = replace(suite, rules=tuple(rules))
    return out


def valid_row(rule: Rule, today: date) -> Column:
    """True where the row satisfies a row-level ``rule`` (the same semantics as the GE expectation)."""
    if rule.check == "unique":
        keys = [F.col(c) for c in rule.columns]
        all_null = reduce(lambda a, b: a & b, [k.isNull() for k in keys])
        return all_null | (F.count(F.lit(1)).over(Window.partitionBy(*keys)) == 1)
    col = F.col(rule.column)
    if rule.check == "not_null":
        return col.isNotNull()
    if rule.check == "match_regex":
        return col.isNull() | col.rlike(rule.regex)
    if rule.check == "in_set":
        return col.isNull() | col.isin(*rule.values)
    if rule.check == "between":
        low, high = rule.bounds(today)
        ok = F.lit(True)
        if low is not None:
            ok = ok & ((col > F.lit(low)) if rule.strict_min else (col >= F.lit(low)))
        if high is not None:
            ok = ok & ((col < F.lit(high)) if rule.strict_max else (col <= F.lit(high)))
        return col.isNull() | ok
    raise ConfigError(f"{rule.key}: {rule.check!r} is a table-level check and has no row predicate")
