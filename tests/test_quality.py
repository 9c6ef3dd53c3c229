"""Silver quality gate: real Great Expectations runs on small inline DataFrames."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import CdpConfig, PathsConfig, SilverConfig
from cdp_spark.errors import ConfigError, MissingColumnsError, QualityGateError
from cdp_spark.quality import validate_tables
from cdp_spark.quality.suites import load_suites, parse_suite, with_severity_overrides

ORDERS = (
    "source string, record_id string, country string, order_ts timestamp, order_date date, channel string, store_id string,"
    " status string, items int, currency string, amount double, amount_reporting double, reporting_currency string"
)
INTERACTIONS = (
    "source string, record_id string, country string, event_ts timestamp, kind string, event_type string, channel string,"
    " campaign_id string, url string, platform string, topic string"
)
CUSTOMERS = (
    "source string, record_id string, country string, first_name string, last_name string, name_key string, date_of_birth date,"
    " gender string, city string, postcode string, email_reason string, phone_reason string, updated_at timestamp, ingested_at timestamp"
)
IDENTIFIERS = "source string, record_id string, id_type string, id_key string, anonymous boolean, country string, seen_at timestamp"
FX = "date date, currency string, rate_to_eur double"
TS = datetime(2026, 3, 1, 12, 0)


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _order(record_id: str, currency: str | None, amount: float | None) -> tuple:
    return ("shop", record_id, "DE", TS, TS.date(), "ecommerce", None, "completed", 1, currency, amount, amount, "EUR")


def _customer(record_id: str, dob: date | None) -> tuple:
    return ("crm", record_id, "FR", "Ann", "Lee", "ann lee", dob, "f", "Paris", "75001", "ok", "ok", TS, TS)


def _event(record_id: str, channel: str) -> tuple:
    return ("web", record_id, "DE", TS, "web_event", "page_view", channel, None, "/", None, None)


def _cfg(tmp_path: Path, **severity: str) -> CdpConfig:
    return CdpConfig(
        paths=PathsConfig(lakehouse=str(tmp_path / "lake"), reports=str(tmp_path / "reports")),
        silver=SilverConfig(quality_severity=severity),
    )


@pytest.fixture()
def lake(spark, tmp_path):
    from cdp_spark.lake import Lake

    return Lake(spark, str(tmp_path / "lake"), engine="delta-rs")


def _results(lake) -> DataFrame:
    return lake.read("ops", "quality_results")


def test_clean_tables_pass_unchanged_and_every_expectation_is_recorded(spark, lake, tmp_path):
    fx = spark.createDataFrame([(date(2026, 3, 1), "USD", 0.92), (date(2026, 3, 1), "GBP", 1.17)], FX)
    identifiers = spark.createDataFrame(
        [("crm", "1", "email", _key("email:a@x.io"), False, "FR", TS), ("web", "9", "cookie_id", _key("cookie_id:c1"), True, None, TS)],
        IDENTIFIERS,
    )

    out, summary = validate_tables(spark, _cfg(tmp_path), lake, {"fx_rates": fx, "identifiers": identifiers}, run_id="run-pass")

    assert summary == {"fx_rates": "passed", "identifiers": "passed", "_data_docs": str(tmp_path / "reports" / "data_docs" / "index.html")}
    assertDataFrameEqual(out["fx_rates"], fx)
    assertDataFrameEqual(out["identifiers"], identifiers)
    suites = load_suites()
    expected = [
        ("run-pass", table, rule.name, rule.severity, True, 0 if rule.row_level else None, 2)
        for table in ("fx_rates", "identifiers")
        for rule in suites[table].rules
        if not rule.when_rows_in  # identifiers_not_empty is skipped: no table it depends on has rows
    ]
    got = _results(lake).select("run_id", "table", "expectation", "severity", "success", "unexpected_count", "element_count")
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))
    assert Path(summary["_data_docs"]).is_file()
    assert "silver.fx_rates" in Path(summary["_data_docs"]).read_text(encoding="utf-8")
    assert not lake.exists("silver", "quality_rejects")


def test_error_rows_are_quarantined_warnings_only_reported_and_severity_overridable(spark, lake, tmp_path):
    orders = spark.createDataFrame(
        [
            _order("o1", "EUR", 10.0),
            _order("o2", "EUR", -5.0),  # amount_non_negative
            _order("o3", "eu", 3.0),  # currency_iso4217
            _order("o4", "X", -1.0),  # both
            _order("o5", None, None),  # nulls pass format and range checks
        ],
        ORDERS,
    )
    interactions = spark.createDataFrame([_event("e1", "web"), _event("e2", "carrier_pigeon")], INTERACTIONS)  # channel_known: warn
    customers = spark.createDataFrame([_customer("c1", date(1980, 5, 1)), _customer("c2", date(1850, 1, 1))], CUSTOMERS)
    cfg = _cfg(tmp_path, **{"customer_records.date_of_birth_plausible": "error"})  # a warn by default

    out, summary = validate_tables(
        spark, cfg, lake, {"orders": orders, "interactions": interactions, "customer_records": customers}, run_id="run-err"
    )

    assert {k: v for k, v in summary.items() if k != "_data_docs"} == {
        "orders": "rows quarantined: 3",
        "interactions": "warnings: 1",
        "customer_records": "rows quarantined: 1",
    }
    assertDataFrameEqual(out["orders"], spark.createDataFrame([_order("o1", "EUR", 10.0), _order("o5", None, None)], ORDERS))
    assertDataFrameEqual(out["interactions"], interactions)
    assertDataFrameEqual(out["customer_records"], spark.createDataFrame([_customer("c1", date(1980, 5, 1))], CUSTOMERS))

    rejects = lake.read("silver", "quality_rejects")
    expected_rejects = [
        ("run-err", "orders", '{"source":"shop","record_id":"o2"}', "amount_non_negative", "error"),
        ("run-err", "orders", '{"source":"shop","record_id":"o3"}', "currency_iso4217", "error"),
        ("run-err", "orders", '{"source":"shop","record_id":"o4"}', "currency_iso4217", "error"),
        ("run-err", "orders", '{"source":"shop","record_id":"o4"}', "amount_non_negative", "error"),
        ("run-err", "customer_records", '{"source":"crm","record_id":"c2"}', "date_of_birth_plausible", "error"),
    ]
    got = rejects.select("run_id", "table", "record_key", "expectation", "severity")
    assertDataFrameEqual(got, spark.createDataFrame(expected_rejects, got.schema))
    results = _results(lake)
    validated_at = {r[0] for r in results.select("validated_at").distinct().collect()}
    assert {r[0] for r in rejects.select("rejected_at").distinct().collect()} == validated_at

    failed = results.where("not success").select("table", "expectation", "severity", "unexpected_count", "element_count")
    assertDataFrameEqual(
        failed,
        spark.createDataFrame(
            [
                ("orders", "currency_iso4217", "error", 2, 5),
                ("orders", "amount_non_negative", "error", 2, 5),
                ("interactions", "channel_known", "warn", 1, 2),
                ("customer_records", "date_of_birth_plausible", "error", 1, 2),
            ],
            failed.schema,
        ),
    )
    observed = json.loads(results.where("expectation = 'channel_known'").first()["observed_value"])
    assert observed == {"unexpected_percent": 50.0}  # no value samples: they would copy personal data


def test_critical_failure_raises_naming_table_and_expectation_and_writes_no_rejects(spark, lake, tmp_path):
    customers = spark.createDataFrame([_customer("c1", None), _customer("c1", None)], CUSTOMERS)  # record_key_unique
    identifiers = spark.createDataFrame([], IDENTIFIERS)  # identifiers_not_empty while customers and orders have rows
    orders = spark.createDataFrame([_order("o1", "EUR", -1.0)], ORDERS)  # an error row: must not reach silver.quality_rejects
    tables = {"identifiers": identifiers, "customer_records": customers, "orders": orders}

    with pytest.raises(QualityGateError) as err:
        validate_tables(spark, _cfg(tmp_path), lake, tables, run_id="run-crit")

    message = str(err.value)
    assert "customer_records.record_key_unique (2 of 2 rows unexpected)" in message
    assert "identifiers.identifiers_not_empty (observed 0)" in message
    assert "orders.amount_non_negative" not in message
    assert not lake.exists("silver", "quality_rejects")
    failed = _results(lake).where("not success").select("run_id", "table", "expectation", "severity")
    assertDataFrameEqual(
        failed,
        spark.createDataFrame(
            [
                ("run-crit", "customer_records", "record_key_unique", "critical"),
                ("run-crit", "identifiers", "identifiers_not_empty", "critical"),
                ("run-crit", "orders", "amount_non_negative", "error"),
            ],
            failed.schema,
        ),
    )


def test_missing_column_is_reported_before_any_validation(spark, lake, tmp_path):
    fx = spark.createDataFrame([(date(2026, 3, 1), "USD")], "date date, currency string")
    with pytest.raises(MissingColumnsError, match=r"silver.fx_rates .*rate_to_eur"):
        validate_tables(spark, _cfg(tmp_path), lake, {"fx_rates": fx}, run_id="run-missing")
    assert not lake.exists("ops", "quality_results")


def test_unknown_severity_override_names_the_key():
    with pytest.raises(ConfigError, match=r"orders\.amount_positive"):
        with_severity_overrides(load_suites(), {"orders.amount_positive": "warn"})


def test_table_level_expectation_cannot_be_error_severity():
    with pytest.raises(ConfigError, match=r"identifiers\.identifiers_not_empty.*critical or warn"):
        with_severity_overrides(load_suites(), {"identifiers.identifiers_not_empty": "error"})


def test_suite_with_a_repeated_expectation_name_is_rejected():
    rule = {"name": "x", "check": "not_null", "column": "a", "severity": "warn"}
    with pytest.raises(ConfigError, match="repeated: x"):
        parse_suite({"table": "t", "keys": ["a"], "expectations": [rule, rule]}, "t.yaml")


def test_consent_purposes_in_the_suite_are_the_purposes_profiles_know():
    from cdp_spark.profiles.consent import PURPOSES

    (rule,) = [r for r in load_suites()["consents"].rules if r.name == "purpose_known"]
    assert sorted(rule.values) == sorted(PURPOSES)
