"""Incremental silver: a batch of new bronze rows merged into silver gives the silver a full rebuild gives.

Tiny landing files for five sources (CRM, web events, orders, consents, FX) arrive in two deliveries.
The second delivery holds the cases an incremental build can get wrong: a new version of a CRM
record (new e-mail, phone dropped), an older version arriving late, a re-delivered event, the same
event content under a new id, a consent revocation of an earlier grant, and an FX rate dated before
orders already in silver.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import parse_config
from cdp_spark.errors import QualityGateError
from cdp_spark.ingest import run_bronze
from cdp_spark.lake import Lake
from cdp_spark.pipeline import silver as silver_mod
from cdp_spark.pipeline.silver import build_full, run_silver
from cdp_spark.privacy.pseudonymize import load_secret

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("crm_customers", "web_events", "orders", "consents", "fx_rates")
CRM_HEADER = '"customer_id","first_name","last_name","email","phone","date_of_birth","gender","street","city","postcode","country","loyalty_id","created_at","updated_at"'
CONSENT_HEADER = '"consent_id","customer_id","email","purpose","status","event_ts","country"'

FIRST = {
    "crm_customers/crm_1.csv": [
        CRM_HEADER,
        '"C1","Ayşe","Yılmaz","AYSE@MAIL.COM.TR","+90 532 111 22 33","1990-01-02","F","x","İzmir","35000","TR","LY1","2025-01-01T10:00:00+03:00","2025-01-01T10:00:00+03:00"',
        '"C2","Jörg","Maier","joerg@web.de","+49 151 2345 6789","1980-05-06","M","y","Köln","50667","DE","LY2","2025-01-01T10:00:00+01:00","2025-02-01T10:00:00+01:00"',
    ],
    "web_events/web_1.jsonl": [
        {"event_id": "we-1", "cookie_id": "ck-1", "customer_id": "C1", "event_type": "login", "event_ts": "2025-03-01T10:00:00+03:00", "url": "https://s.io/a", "country": "TR"},
        {"event_id": "we-2", "cookie_id": "ck-2", "customer_id": None, "event_type": "page_view", "event_ts": "2025-03-01T11:00:00+01:00", "url": "https://s.io/b", "country": "DE"},
    ],
    "orders/orders_1.jsonl": [
        {"order_id": "O1", "customer_id": "C1", "email": None, "phone": None, "device_id": None, "order_ts": "2025-03-10T12:00:00+03:00", "currency": "TRY", "amount": 500.0, "items": 2, "country": "TR", "status": "completed"},
        {"order_id": "O2", "customer_id": "C2", "email": None, "phone": None, "device_id": None, "order_ts": "2025-03-20T12:00:00+01:00", "currency": "EUR", "amount": 80.0, "items": 1, "country": "DE", "status": "completed"},
    ],
    "consents/consents_1.csv": [CONSENT_HEADER, '"K1","C1","ayse@mail.com.tr","marketing_email","granted","2025-01-05T10:00:00+03:00","TR"'],
    "fx_rates/fx_1.csv": ['"date","currency","rate_to_eur"', '"2025-01-01","TRY",0.030', '"2025-01-01","EUR",1.0'],
}
SECOND = {
    "crm_customers/crm_2.csv": [
        CRM_HEADER,
        # C1 moves: a new e-mail, the phone is gone (its identifier row must go too)
        '"C1","Ayşe","Yılmaz","ayse.new@mail.com.tr",,"1990-01-02","F","x","İzmir","35000","TR","LY1","2025-01-01T10:00:00+03:00","2025-04-01T10:00:00+03:00"',
        # an older version of C2 arrives late: history gains it, the current record stays
        '"C2","Jörg","Maier","old@web.de","+49 151 2345 6789","1980-05-06","M","y","Köln","50667","DE","LY2","2025-01-01T10:00:00+01:00","2025-01-15T10:00:00+01:00"',
        '"C3","Ana","Souza","ana@uol.com.br","+55 11 96942-3658","1995-07-08","F","z","Rio","20000","BR","LY3","2025-04-01T10:00:00-03:00","2025-04-01T10:00:00-03:00"',
    ],
    "web_events/web_2.jsonl": [
        # we-1 again (a re-delivery: kept once), we-2's content under a new id (kept once), one new event
        {"event_id": "we-1", "cookie_id": "ck-1", "customer_id": "C1", "event_type": "login", "event_ts": "2025-03-01T10:00:00+03:00", "url": "https://s.io/a", "country": "TR"},
        {"event_id": "we-2b", "cookie_id": "ck-2", "customer_id": None, "event_type": "page_view", "event_ts": "2025-03-01T11:00:00+01:00", "url": "https://s.io/b", "country": "DE"},
        {"event_id": "we-3", "cookie_id": "ck-3", "customer_id": "C3", "event_type": "login", "event_ts": "2025-04-02T10:00:00-03:00", "url": "https://s.io/c", "country": "BR"},
    ],
    "orders/orders_2.jsonl": [
        {"order_id": "O3", "customer_id": "C3", "email": "ana@uol.com.br", "phone": None, "device_id": None, "order_ts": "2025-04-03T12:00:00-03:00", "currency": "TRY", "amount": 100.0, "items": 1, "country": "BR", "status": "completed"},
    ],
    # C1 revokes: the grant of the first delivery gets a valid_to
    "consents/consents_2.csv": [CONSENT_HEADER, '"K2","C1","ayse@mail.com.tr","marketing_email","revoked","2025-04-05T10:00:00+03:00","TR"'],
    # a new TRY rate dated before O1: O1's reporting amount changes
    "fx_rates/fx_2.csv": ['"date","currency","rate_to_eur"', '"2025-03-01","TRY",0.025'],
}


def _deliver(landing: Path, files: dict[str, list]) -> None:
    for rel, lines in files.items():
        path = landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x for x in lines)
        path.write_text(text + "\n", encoding="utf-8")


def _config(tmp_path: Path, **silver):
    sources = [s for s in yaml.safe_load((ROOT / "conf" / "sources.yaml").read_text())["sources"] if s["name"] in SOURCES]
    return parse_config(
        {
            "paths": {"landing": str(tmp_path / "landing"), "lakehouse": str(tmp_path / "lake"), "reports": str(tmp_path / "reports")},
            "silver": {"local_secret_file": str(tmp_path / "secret.key"), **silver},
            "sources": sources,
        },
        base_dir=tmp_path,
    )


def _silver_tables(lake: Lake) -> dict:
    return {name: lake.read("silver", name) for name in lake.tables("silver") if name != "quality_rejects"}


def _assert_equals_full_rebuild(spark, cfg, lake: Lake) -> None:
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=True)
    bronze = {src.name: lake.read("bronze", src.name) for src in cfg.sources if lake.exists("bronze", src.name)}
    built = build_full(spark, cfg, bronze, key=key)
    expected = {**built.tables, silver_mod.EVENT_INDEX: built.event_index}
    actual = _silver_tables(lake)
    assert sorted(actual) == sorted(expected)
    for name, df in expected.items():
        assertDataFrameEqual(actual[name], df.select(*actual[name].columns))


@pytest.fixture(autouse=True)
def _release_caches(spark):
    """run_silver is called directly here, not through run_stage, which releases what a stage persisted."""
    yield
    spark.catalog.clearCache()


@pytest.fixture()
def two_deliveries(spark, tmp_path):
    cfg = _config(tmp_path)
    _deliver(tmp_path / "landing", FIRST)
    run_bronze(spark, cfg, run_id="b1")
    first = run_silver(spark, cfg, run_id="s1")
    _deliver(tmp_path / "landing", SECOND)
    run_bronze(spark, cfg, run_id="b2")
    return cfg, first


def test_an_incremental_batch_gives_the_silver_of_a_full_rebuild(spark, tmp_path, two_deliveries):
    cfg, first = two_deliveries
    lake = Lake(spark, cfg.paths.lakehouse)

    second = run_silver(spark, cfg, run_id="s2")

    assert (first.batch, first.mode, second.batch, second.mode) == (1, "full", 2, "incremental")
    assert second.rows_in == 9  # only the second delivery's bronze rows were read
    _assert_equals_full_rebuild(spark, cfg, lake)
    # the cases, spelled out
    records = {r.record_id: r for r in lake.read("silver", "customer_records").collect()}
    assert records["C2"].updated_at.isoformat() == "2025-02-01T09:00:00"  # the late older version did not win
    assert lake.read("silver", "customer_record_history").where("record_id = 'C2'").count() == 2
    c1_types = sorted(r.id_type for r in lake.read("silver", "identifiers").where("record_id = 'C1'").collect())
    assert c1_types == ["customer_id", "email", "loyalty_id"]  # the dropped phone's identifier went
    assert sorted(r.record_id for r in lake.read("silver", "interactions").collect()) == ["we-1", "we-2", "we-3"]
    consents = {r.record_id: r for r in lake.read("silver", "consents").collect()}
    assert (consents["K1"].is_current, consents["K2"].is_current) == (False, True)
    assert consents["K1"].valid_to == consents["K2"].valid_from
    o1 = lake.read("silver", "orders").where("record_id = 'O1'").first()
    assert float(o1.amount_reporting) == 12.5  # 500 TRY at the new 0.025 rate
    assert second.duplicates_dropped == {"events": 2}

    versions = {name: lake.version("silver", name) for name in lake.tables("silver")}
    third = run_silver(spark, cfg, run_id="s3")  # nothing new in bronze: silver is left alone
    assert (third.mode, third.batch, third.rows_in) == ("up to date", None, 0)
    assert {name: lake.version("silver", name) for name in lake.tables("silver")} == versions


class _Crash(BaseException):
    pass


def test_a_batch_killed_between_tables_is_finished_by_the_next_run_without_double_writes(spark, tmp_path, two_deliveries, monkeypatch):
    cfg, _ = two_deliveries
    lake = Lake(spark, cfg.paths.lakehouse)

    def crash_after_identifiers(point: str, detail: str | None = None) -> None:
        if point == "silver.between_tables" and detail == "identifiers":
            raise _Crash(detail)

    monkeypatch.setattr(silver_mod, "fault_point", crash_after_identifiers)
    with pytest.raises(_Crash):
        run_silver(spark, cfg, run_id="s2")
    batches = lake.read("ops", "silver_batches").orderBy("batch").select("batch", "status").collect()
    assert [tuple(r) for r in batches] == [(1, "committed"), (2, "started")]
    written_before = lake.version("silver", "identifiers")
    monkeypatch.undo()

    again = run_silver(spark, cfg, run_id="s2-rerun")

    assert (again.batch, again.mode) == (2, "incremental")
    assert lake.version("silver", "identifiers") == written_before  # skipped: its transaction id was committed
    assert [tuple(r) for r in lake.read("ops", "silver_batches").orderBy("batch").select("batch", "status").collect()] == [(1, "committed"), (2, "committed")]
    _assert_equals_full_rebuild(spark, cfg, lake)


def _record_ids(lake: Lake) -> dict[str, list[str]]:
    tables = ("customer_records", "customer_record_history", "identifiers", "interactions", "orders", "pii_contacts", "event_index")
    return {t: sorted({r.record_id for r in lake.read("silver", t).select("record_id").collect()}) for t in tables if lake.exists("silver", t)}


def test_a_subject_erased_while_a_batch_was_down_does_not_come_back_with_its_replay(spark, tmp_path, two_deliveries, monkeypatch):
    """The replay reads the bronze versions its first attempt read, which still hold the erased rows:
    they are dropped as intake drops them, and forget leaves bronze's old files for the replay."""
    from cdp_spark.privacy import forget

    cfg, _ = two_deliveries
    cfg = cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update={"vacuum_retention_hours": 0})})
    lake = Lake(spark, cfg.paths.lakehouse)

    def crash_after_identifiers(point: str, detail: str | None = None) -> None:
        if point == "silver.between_tables" and detail == "identifiers":
            raise _Crash(detail)

    monkeypatch.setattr(silver_mod, "fault_point", crash_after_identifiers)
    with pytest.raises(_Crash):
        run_silver(spark, cfg, run_id="s2")
    monkeypatch.undo()

    report = forget(spark, cfg, ["email:ana@uol.com.br"], run_id="erase-c3")  # C3, new in the crashed batch
    assert report.records == 3  # C3's CRM record, its order O3 and its login we-3
    assert sorted(report.files_vacuumed) == [t for t in sorted(report.files_vacuumed) if not t.startswith("bronze.")]

    again = run_silver(spark, cfg, run_id="s2-rerun")

    assert (again.batch, again.mode) == (2, "incremental")
    ids = _record_ids(lake)
    assert [t for t, recs in ids.items() if {"C3", "O3", "we-3"} & set(recs)] == []
    assert ids["customer_records"] == ["C1", "C2"]
    _assert_equals_full_rebuild(spark, cfg, lake)


def test_a_subject_erased_before_silver_read_their_new_rows_never_reaches_silver(spark, tmp_path, two_deliveries):
    """C3 arrives in the second delivery, which bronze has ingested and silver not read yet: erasing
    C3's address finds their CRM row and order in bronze, then (one hop, through their customer id)
    the login that carries no address; the next silver batch sees none of them."""
    from cdp_spark.privacy import forget

    cfg, _ = two_deliveries
    lake = Lake(spark, cfg.paths.lakehouse)

    report = forget(spark, cfg, ["email:ana@uol.com.br"], run_id="erase-c3")

    assert (report.customers, report.records) == (0, 3)
    assert {n: sorted(r._record_key for r in lake.read("bronze", n).collect()) for n in ("crm_customers", "orders", "web_events")} == {
        "crm_customers": ["C1", "C1", "C2", "C2"], "orders": ["O1", "O2"], "web_events": ["we-1", "we-1", "we-2", "we-2b"]}
    assert run_silver(spark, cfg, run_id="s2").mode == "incremental"
    assert [t for t, recs in _record_ids(lake).items() if {"C3", "O3", "we-3"} & set(recs)] == []
    _assert_equals_full_rebuild(spark, cfg, lake)
    # the login delivered again: its customer id was kept out at intake too
    _deliver(tmp_path / "landing", {"web_events/web_again.jsonl": [SECOND["web_events/web_2.jsonl"][2]]})
    assert run_bronze(spark, cfg, run_id="b3").rows_suppressed == 1


def test_a_keyed_record_carrying_an_identifier_of_the_subjects_unread_rows_is_erased_with_them(spark, tmp_path):
    """C3 logged in (we-0) before their CRM record arrived; silver keyed the login. The CRM record and
    order, ingested and not yet read by silver, are found by C3's address in bronze; one hop through
    their customer id reaches the login in silver and bronze (kept out at intake from now on, it must
    not stay behind), as it would for a resolved record."""
    from cdp_spark.privacy import forget

    cfg = _config(tmp_path)
    login = {"event_id": "we-0", "cookie_id": "ck-0", "customer_id": "C3", "event_type": "login", "event_ts": "2025-03-25T10:00:00-03:00", "url": "https://s.io/c", "country": "BR"}
    _deliver(tmp_path / "landing", {**FIRST, "web_events/web_0.jsonl": [login]})
    run_bronze(spark, cfg, run_id="b1")
    run_silver(spark, cfg, run_id="s1")
    _deliver(tmp_path / "landing", SECOND)
    run_bronze(spark, cfg, run_id="b2")
    lake = Lake(spark, cfg.paths.lakehouse)
    assert "we-0" in _record_ids(lake)["interactions"]

    report = forget(spark, cfg, ["email:ana@uol.com.br"], run_id="erase-c3")

    assert report.records == 4  # C3, O3, the later login we-3 and the earlier login we-0
    assert [t for t, recs in _record_ids(lake).items() if "we-0" in recs] == []
    assert sorted(r._record_key for r in lake.read("bronze", "web_events").collect()) == ["we-1", "we-1", "we-2", "we-2b"]
    assert run_silver(spark, cfg, run_id="s2").mode == "incremental"
    assert [t for t, recs in _record_ids(lake).items() if {"C3", "O3", "we-3", "we-0"} & set(recs)] == []


def test_an_erasure_reaches_a_row_the_quality_gate_rejected(spark, tmp_path, two_deliveries):
    from cdp_spark.privacy import forget

    cfg, _ = two_deliveries
    lake = Lake(spark, cfg.paths.lakehouse)
    run_silver(spark, cfg, run_id="s2")
    refund = {"order_id": "O4", "customer_id": "C3", "order_ts": "2025-04-04T12:00:00-03:00", "currency": "BRL", "amount": -5.0, "items": 1, "country": "BR", "status": "completed"}
    _deliver(tmp_path / "landing", {"orders/orders_3.jsonl": [refund]})
    run_bronze(spark, cfg, run_id="b3")
    run_silver(spark, cfg, run_id="s3")
    rejected = sorted({json.loads(r.record_key)["record_id"] for r in lake.read("silver", "quality_rejects").collect()})
    assert rejected == ["O4"] and "O4" not in _record_ids(lake)["orders"]  # the negative amount was rejected, not keyed

    report = forget(spark, cfg, ["email:ana@uol.com.br"], run_id="erase-c3")

    assert report.records == 4  # C3, O3, we-3 and the rejected O4
    assert sorted(r._record_key for r in lake.read("bronze", "orders").collect()) == ["O1", "O2"]
    assert lake.read("silver", "quality_rejects").count() == 0
    # the same file delivered again under a new name: kept out at intake
    _deliver(tmp_path / "landing", {"orders/orders_3_again.jsonl": [refund]})
    assert run_bronze(spark, cfg, run_id="b4").rows_suppressed == 1
    assert sorted(r._record_key for r in lake.read("bronze", "orders").collect()) == ["O1", "O2"]


def test_a_critical_failure_in_a_batch_leaves_silver_at_its_previous_version(spark, tmp_path, two_deliveries):
    _, _ = two_deliveries
    lake = Lake(spark, str(tmp_path / "lake"))
    strict = _config(tmp_path, quality_severity={"orders.amount_non_negative": "critical"})
    assert run_silver(spark, strict, run_id="s2").mode == "full"  # a changed setting: rebuilt once, all rows pass
    versions = {name: lake.version("silver", name) for name in lake.tables("silver")}
    rows = {name: lake.read("silver", name).count() for name in versions}
    # a refund booked as a negative amount arrives
    _deliver(
        tmp_path / "landing",
        {"orders/orders_3.jsonl": [{"order_id": "O4", "customer_id": "C2", "order_ts": "2025-04-04T12:00:00+01:00", "currency": "EUR", "amount": -5.0, "items": 1, "country": "DE", "status": "completed"}]},
    )
    run_bronze(spark, strict, run_id="b3")

    with pytest.raises(QualityGateError) as err:
        run_silver(spark, strict, run_id="s3")

    assert "silver stays at its previous version" in str(err.value)
    assert "orders.amount_non_negative (1 of 1 rows unexpected)" in str(err.value)  # only the batch was validated
    assert {name: lake.version("silver", name) for name in lake.tables("silver")} == versions
    assert {name: lake.read("silver", name).count() for name in versions} == rows
    assert [r.status for r in lake.read("ops", "silver_batches").orderBy("batch").collect()] == ["committed", "committed"]


def test_a_changed_setting_rebuilds_silver_in_full(spark, tmp_path, two_deliveries):
    cfg, _ = two_deliveries
    lake = Lake(spark, cfg.paths.lakehouse)
    run_silver(spark, cfg, run_id="s2")
    changed = _config(tmp_path, reporting_currency="TRY")

    report = run_silver(spark, changed, run_id="s3")

    assert (report.batch, report.mode) == (3, "full")
    amounts = {r.record_id: (r.reporting_currency, float(r.amount_reporting)) for r in lake.read("silver", "orders").collect()}
    assert amounts == {"O1": ("TRY", 500.0), "O2": ("TRY", 3200.0), "O3": ("TRY", 100.0)}  # 80 EUR at 0.025 EUR per TRY
    _assert_equals_full_rebuild(spark, changed, lake)
