"""Privacy: erasure end to end (bronze → silver → gold → exports → files on disk), suppression
against re-ingestion, retention/TTL purge, PII scan, request parsing and residency.

The lakehouse is tiny and built once: bronze rows for two customers (A: Ana, B: Bora) plus an
anonymous visitor, silver by the real silver transforms, gold identity/profile tables by hand,
two export runs (one delivered). Each test works on its own copy. Identifier keys are checked
against Python's ``hmac`` (an oracle independent of the Spark HMAC).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import random
import shutil
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.activation.exports import write_export
from cdp_spark.config import ExportConfig, parse_config
from cdp_spark.lake import Lake
from cdp_spark.privacy import (
    ErasureRequestError,
    apply_suppression,
    forget,
    purge_expired,
    read_requests,
    residency_split,
    scan_for_raw_pii,
)
from cdp_spark.privacy.pseudonymize import load_secret

D = datetime
SOURCES = [
    {"name": "crm", "kind": "customer", "path": "crm/*.csv", "format": "csv", "country_column": "country",
     "event_time_column": "updated_at", "record_key": "customer_id"},
    {"name": "web", "kind": "web_event", "path": "web/*.jsonl", "format": "json", "country_column": "country",
     "event_time_column": "event_ts", "record_key": "event_id"},
    {"name": "shop", "kind": "order", "path": "shop/*.jsonl", "format": "json", "country_column": "country",
     "event_time_column": "order_ts", "record_key": "order_id"},
    {"name": "optin", "kind": "consent", "path": "optin/*.csv", "format": "csv", "country_column": "country",
     "event_time_column": "event_ts", "record_key": "consent_id"},
]
CRM = [  # customer_id, email, phone, country, first_name, last_name, updated_at
    ("CRM-A1", "Ana.Lopez+promo@gmail.com", "+49 30 12345678", "Germany", "Ana", "Lopez", "2025-11-01T10:00:00"),
    ("CRM-B2", "bora.yilmaz@mail.com.tr", "0532 123 45 67", "TR", "Bora", "Yilmaz", "2025-11-02T10:00:00"),
]
WEB = [  # event_id, customer_id, cookie_id, event_type, country, event_ts
    ("WEB-A1", "CRM-A1", "ck-ana-123", "page_view", "DE", "2025-12-01T09:00:00"),
    ("WEB-A2", None, "ck-ana-123", "page_view", "DE", "2020-01-01T09:00:00"),  # anonymous, but Ana's cookie
    ("WEB-B3", "CRM-B2", None, "add_to_cart", "TR", "2024-01-05T09:00:00"),
    ("WEB-Z4", None, "ck-zed-999", "page_view", "DE", "2020-01-02T09:00:00"),  # anonymous visitor
]
SHOP = [  # order_id, customer_id, amount, currency, country, order_ts
    ("ORD-A1", "CRM-A1", 120.0, "EUR", "DE", "2025-12-02T12:00:00"),
    ("ORD-B2", "CRM-B2", 80.0, "EUR", "TR", "2025-12-03T12:00:00"),
]
OPTIN = [  # consent_id, customer_id, email, purpose, status, country, event_ts
    ("CON-A1", None, "ANA.LOPEZ@gmail.com", "marketing_email", "granted", "DE", "2025-10-01T08:00:00"),  # email only: unresolved
    ("CON-B2", "CRM-B2", None, "ads", "granted", "TR", "2025-10-02T08:00:00"),
]
UID = {"CRM-A1": "cu_ana", "WEB-A1": "cu_ana", "WEB-A2": "cu_ana", "ORD-A1": "cu_ana",
       "CRM-B2": "cu_bora", "WEB-B3": "cu_bora", "ORD-B2": "cu_bora", "CON-B2": "cu_bora", "WEB-Z4": "cu_zed"}
ANA_RECORDS = {"CRM-A1", "WEB-A1", "WEB-A2", "ORD-A1", "CON-A1"}
ANA_IDS = {"email": "analopez@gmail.com", "phone": "+493012345678", "customer_id": "CRM-A1", "cookie_id": "ck-ana-123"}
BORA_IDS = {"email": "bora.yilmaz@mail.com.tr", "phone": "+905321234567", "customer_id": "CRM-B2"}


def hkey(key: bytes, id_type: str, value: str) -> str:
    return hmac.new(key, f"{id_type}:{value}".encode(), hashlib.sha256).hexdigest()


def _meta(rows, source, key_idx, country_idx):
    return [(*r, source, r[key_idx], r[country_idx], D(2026, 1, 10), f"/landing/{source}.txt", n + 1) for n, r in enumerate(rows)]


_META = "_source string, _record_key string, _country string, _ingested_at timestamp, _file_path string, _line long"


def _bronze_frames(spark):
    return {
        "crm": spark.createDataFrame(_meta(CRM, "crm", 0, 3), "customer_id string, email string, phone string, country string, "
                                     f"first_name string, last_name string, updated_at string, {_META}"),
        "web": spark.createDataFrame(_meta(WEB, "web", 0, 4), "event_id string, customer_id string, cookie_id string, "
                                     f"event_type string, country string, event_ts string, {_META}"),
        "shop": spark.createDataFrame(_meta(SHOP, "shop", 0, 4), "order_id string, customer_id string, amount double, "
                                      f"currency string, country string, order_ts string, {_META}"),
        "optin": spark.createDataFrame(_meta(OPTIN, "optin", 0, 5), "consent_id string, customer_id string, email string, "
                                       f"purpose string, status string, country string, event_ts string, {_META}"),
    }


# Silver as the silver stage writes it (the columns erasure and retention rely on), standardized by hand.
IDENTIFIERS = [  # source, record_id, id_type, value, country, seen_at
    ("crm", "CRM-A1", "customer_id", "CRM-A1", "DE", D(2025, 11, 1, 10)), ("crm", "CRM-A1", "email", "analopez@gmail.com", "DE", D(2025, 11, 1, 10)),
    ("crm", "CRM-A1", "phone", "+493012345678", "DE", D(2025, 11, 1, 10)), ("crm", "CRM-B2", "customer_id", "CRM-B2", "TR", D(2025, 11, 2, 10)),
    ("crm", "CRM-B2", "email", "bora.yilmaz@mail.com.tr", "TR", D(2025, 11, 2, 10)), ("crm", "CRM-B2", "phone", "+905321234567", "TR", D(2025, 11, 2, 10)),
    ("web", "WEB-A1", "customer_id", "CRM-A1", "DE", D(2025, 12, 1, 9)), ("web", "WEB-A1", "cookie_id", "ck-ana-123", "DE", D(2025, 12, 1, 9)),
    ("web", "WEB-A2", "cookie_id", "ck-ana-123", "DE", D(2020, 1, 1, 9)), ("web", "WEB-B3", "customer_id", "CRM-B2", "TR", D(2024, 1, 5, 9)),
    ("web", "WEB-Z4", "cookie_id", "ck-zed-999", "DE", D(2020, 1, 2, 9)), ("shop", "ORD-A1", "customer_id", "CRM-A1", "DE", D(2025, 12, 2, 12)),
    ("shop", "ORD-B2", "customer_id", "CRM-B2", "TR", D(2025, 12, 3, 12)), ("optin", "CON-A1", "email", "analopez@gmail.com", "DE", D(2025, 10, 1, 8)),
    ("optin", "CON-B2", "customer_id", "CRM-B2", "TR", D(2025, 10, 2, 8)),
]


def _silver_frames(spark, key: bytes) -> dict:
    ids = [(s, r, t, hkey(key, t, v), t in ("cookie_id", "device_id"), c, ts) for s, r, t, v, c, ts in IDENTIFIERS]
    people = [("crm", "CRM-A1", "DE", "Ana", "Lopez", D(2025, 11, 1, 10)), ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 11, 2, 10))]
    people_schema = "source string, record_id string, country string, first_name string, last_name string, updated_at timestamp"
    return {
        "identifiers": spark.createDataFrame(ids, "source string, record_id string, id_type string, id_key string, anonymous boolean, country string, seen_at timestamp"),
        "customer_records": spark.createDataFrame(people, people_schema),
        "customer_record_history": spark.createDataFrame(people, people_schema),
        "pii_contacts": spark.createDataFrame(
            [("crm", "CRM-A1", "DE", "analopez@gmail.com", "+493012345678"), ("crm", "CRM-B2", "TR", "bora.yilmaz@mail.com.tr", "+905321234567"),
             ("optin", "CON-A1", "DE", "analopez@gmail.com", None)],
            "source string, record_id string, country string, email_norm string, phone_e164 string",
        ),
        "interactions": spark.createDataFrame(
            [("web", r[0], r[4], datetime.fromisoformat(r[5]), "web_event", r[3]) for r in WEB],
            "source string, record_id string, country string, event_ts timestamp, kind string, event_type string",
        ),
        "orders": spark.createDataFrame(
            [("shop", r[0], r[4], datetime.fromisoformat(r[5]), r[2]) for r in SHOP], "source string, record_id string, country string, order_ts timestamp, amount double"
        ),
        "consents": spark.createDataFrame(
            [("optin", "CON-A1", "DE", "email", hkey(key, "email", "analopez@gmail.com"), "marketing_email", True, D(2025, 10, 1, 8), None, True),
             ("optin", "CON-B2", "TR", "customer_id", hkey(key, "customer_id", "CRM-B2"), "ads", True, D(2025, 10, 2, 8), None, True)],
            "source string, record_id string, country string, subject_type string, subject_key string, purpose string, granted boolean, "
            "valid_from timestamp, valid_to timestamp, is_current boolean",
        ),
        "fx_rates": spark.createDataFrame([(date(2025, 12, 1), "TRY", 0.03)], "date date, currency string, rate_to_eur double"),
    }


def _config(base: Path, **privacy):
    return parse_config(
        {
            "paths": {"lakehouse": str(base / "lake"), "exports": str(base / "exports"), "landing": str(base / "landing")},
            "engines": {"storage": "delta-rs"},
            "silver": {"local_secret_file": str(base / "secret.key")},
            "sources": SOURCES,
            "privacy": {"vacuum_retention_hours": 0, **privacy},
        },
        base_dir=base,
    )


def _build(spark, base: Path) -> None:
    cfg = _config(base)
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=True)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs", run_id="build")
    bronze = _bronze_frames(spark)
    for name, df in bronze.items():
        lake.overwrite("bronze", name, df)
    quarantine = spark.createDataFrame(
        [("crm", "/landing/crm.txt", 7, "record", "bad date", "CRM-A9,ana.lopez+promo@gmail.com,Ana,31.02.1990", D(2025, 12, 1)),
         ("crm", "/landing/crm.txt", 8, "record", "bad date", "CRM-B9,bora.yilmaz@mail.com.tr,Bora,31.02.1991", D(2026, 1, 10))],
        "source string, file_path string, line long, level string, reason string, raw string, ingested_at timestamp",
    )
    lake.overwrite("bronze", "quarantine", quarantine)
    for name, df in _silver_frames(spark, key).items():
        lake.overwrite("silver", name, df)
    ids = lake.read("silver", "identifiers")
    uid_map = spark.createDataFrame(list(UID.items()), "record_id string, customer_uid string")
    imap = ids.select("source", "record_id").distinct().join(uid_map, "record_id").select("source", "record_id", "customer_uid")
    lake.overwrite("gold", "identity_map", imap)
    nodes = ids.join(imap, ["source", "record_id"]).select(F.concat_ws(":", "id_type", "id_key").alias("node"), "customer_uid").distinct()
    lake.overwrite("gold", "identity_nodes", nodes.withColumn("component", F.col("customer_uid")))
    lake.overwrite("gold", "identity_edges", nodes.select(F.col("node").alias("src"), F.col("node").alias("dst"), "customer_uid"))
    sha = {u: hashlib.sha256(e.encode()).hexdigest() for u, e in (("cu_ana", ANA_IDS["email"]), ("cu_bora", BORA_IDS["email"]))}
    profile = spark.createDataFrame(
        [("cu_ana", "Ana", "DE", sha["cu_ana"], True), ("cu_bora", "Bora", "TR", sha["cu_bora"], True), ("cu_zed", None, "DE", None, None)],
        "customer_uid string, first_name string, country string, email_sha256 string, consent_marketing_email boolean",
    )
    lake.overwrite("gold", "customer_profile", profile)
    lake.overwrite("gold", "customer_features", spark.createDataFrame([("cu_ana", 1), ("cu_bora", 1)], "customer_uid string, orders long"))
    lake.overwrite("gold", "customer_scores", spark.createDataFrame([("cu_ana", date(2026, 1, 1), 0.2), ("cu_bora", date(2026, 1, 1), 0.7)],
                                                                    "customer_uid string, scoring_date date, churn double"))
    lake.overwrite("gold", "segment_membership", spark.createDataFrame([("buyers", "cu_ana", "r1"), ("buyers", "cu_bora", "r1")],
                                                                       "segment string, customer_uid string, entered_run_id string"))
    lake.overwrite("gold", "export_state", spark.createDataFrame([("news", "cu_ana", "h1", '{"first_name":"Ana"}'), ("news", "cu_bora", "h2", '{"first_name":"Bora"}')],
                                                                 "destination string, customer_uid string, row_hash string, payload string"))
    dest = ExportConfig(name="news", segments=("buyers",), fields=("email_sha256", "first_name", "segments"), format="csv")
    rows = profile.where(F.col("email_sha256").isNotNull()).select("customer_uid", "email_sha256", "first_name", F.array(F.lit("buyers")).alias("segments"))
    for run_id in ("r0", "r1"):
        write_export(rows, dest, str(base / "exports" / "news" / run_id), run_id=run_id, created_at=D(2026, 1, 1), counts={"rows": 2})
    (base / "exports" / "news" / "r0" / "_DELIVERED").write_text("2026-01-01T00:00:00Z\n")


@pytest.fixture(scope="module")
def template(spark, tmp_path_factory, monkeypatch_module):
    base = tmp_path_factory.mktemp("privacy_template")
    _build(spark, base)
    return base


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.delenv("CDP_PSEUDONYMIZATION_KEY", raising=False)
    yield mp
    mp.undo()


@pytest.fixture
def lakehouse(template, tmp_path):
    """A private copy of the template lakehouse: (cfg, base, key)."""
    base = tmp_path / "copy"
    shutil.copytree(template, base)
    cfg = _config(base)
    return cfg, base, (base / "secret.key").read_text().strip().encode()


def _markers(key: bytes, ids: dict[str, str], extra: set[str]) -> set[str]:
    return {hkey(key, t, v) for t, v in ids.items()} | extra


def _rows_holding(texts, markers: set[str]) -> list[str]:
    return [t for t in texts if any(m.lower() in t.lower() for m in markers)]


def _table_texts(spark, lake: Lake, layer: str, name: str) -> list[str]:
    return [r[0] for r in lake.read(layer, name).select(F.to_json(F.struct("*"))).collect()]


def _parquet_texts(root: Path) -> list[str]:
    """Every row of every Parquet file under bronze, silver and gold (ops holds the hashed suppression keys by design)."""
    out = []
    for file in sorted(f for layer in ("bronze", "silver", "gold") for f in (root / layer).rglob("*.parquet")):
        out += [json.dumps(row, default=str) for row in pq.read_table(file).to_pylist()]
    return out


def _sorted_keys(lake: Lake, layer: str, name: str, col: str) -> list[str]:
    return sorted(r[0] for r in lake.read(layer, name).select(col).collect())


def test_forget_removes_a_customer_from_every_table_file_and_undelivered_export(spark, lakehouse):
    cfg, base, key = lakehouse
    ana = _markers(key, ANA_IDS, ANA_RECORDS | {"cu_ana", "lopez"})
    bora = _markers(key, BORA_IDS, {"cu_bora", "yilmaz"})
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    assert _rows_holding(_parquet_texts(base / "lake"), ana), "the oracle must see Ana before erasure"

    report = forget(spark, cfg, ["email:ANA.LOPEZ@gmail.com"], run_id="erase-1")

    assert (report.subjects, report.customers, report.records) == (1, 1, 5)
    # Current version of every table: nothing of Ana, everything of Bora still there.
    for layer in ("bronze", "silver", "gold"):
        for name in lake.tables(layer):
            assert _rows_holding(_table_texts(spark, lake, layer, name), ana) == [], f"{layer}.{name}"
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-B2"]
    assert _sorted_keys(lake, "bronze", "web", "_record_key") == ["WEB-B3", "WEB-Z4"]
    assert _sorted_keys(lake, "bronze", "optin", "_record_key") == ["CON-B2"]
    assert _sorted_keys(lake, "bronze", "quarantine", "raw") == ["CRM-B9,bora.yilmaz@mail.com.tr,Bora,31.02.1991"]
    assert _sorted_keys(lake, "silver", "consents", "record_id") == ["CON-B2"]  # Ana's unresolved email consent went too
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_bora", "cu_zed"]
    assert report.rows_removed["silver.identifiers"] == 8 and report.rows_removed["bronze.web"] == 2
    # No data file on disk holds Ana after the vacuum; Bora's files are intact.
    files = _parquet_texts(base / "lake")
    assert _rows_holding(files, ana) == []
    assert _rows_holding(files, bora)
    # Undelivered export rewritten with a consistent manifest; the delivered one is reported, not touched.
    run = base / "exports" / "news" / "r1"
    manifest = json.loads((run / "manifest.json").read_text())
    [entry] = manifest["files"]
    data = run / entry["name"]
    with data.open() as fh:
        assert [r["customer_uid"] for r in csv.DictReader(fh)] == ["cu_bora"]
    assert (manifest["rows"], entry["sha256"], entry["bytes"]) == (1, hashlib.sha256(data.read_bytes()).hexdigest(), data.stat().st_size)
    assert manifest["erasures"][0]["rows_removed"] == 1
    assert report.exports_rewritten == {str(run): 1}
    assert report.exports_delivered == (str(base / "exports" / "news" / "r0"),)
    # Log and suppression list: hashed only.
    log_rows = lake.read("ops", "erasure_log").collect()
    assert [(r.subject_hash, r.subject_type, r.customers, r.records) for r in log_rows] == [(hkey(key, "email", ANA_IDS["email"]), "email", 1, 5)]
    assert _rows_holding(_table_texts(spark, lake, "ops", "erasure_log"), {"lopez", "ana.", "CRM-A1", "+49"}) == []
    suppressed = {(r.id_type, r.id_key) for r in lake.read("ops", "suppression").collect()}
    assert suppressed == {(t, hkey(key, t, v)) for t, v in ANA_IDS.items()}
    # No resurrection: the original raw rows, re-run through suppression, bring nothing of Ana back.
    raw = _bronze_frames(spark)
    listed = lake.read("ops", "suppression")
    kept, dropped = apply_suppression(
        raw["crm"], key=key, suppressed=listed, columns={"email": "email", "phone": "phone", "customer_id": "customer_id"}, country_col="country"
    )
    assertDataFrameEqual(kept, raw["crm"].where(F.col("customer_id") == "CRM-B2"))
    assertDataFrameEqual(dropped, raw["crm"].where(F.col("customer_id") == "CRM-A1"))
    kept_web, _ = apply_suppression(raw["web"], key=key, suppressed=listed, columns={"customer_id": "customer_id", "cookie_id": "cookie_id"}, country_col=None)
    assert sorted(r.event_id for r in kept_web.collect()) == ["WEB-B3", "WEB-Z4"]  # Ana's anonymous cookie event stays out
    kept_optin, _ = apply_suppression(raw["optin"], key=key, suppressed=listed, columns={"customer_id": "customer_id", "email": "email"}, country_col="country")
    assert _rows_holding([json.dumps(r.asDict(), default=str) for r in kept_optin.collect()], ana) == []


def test_forget_by_an_address_that_only_an_earlier_version_of_a_record_carried(spark, lakehouse):
    """silver.identifiers keys a person record's latest version; an address corrected since lives on
    in bronze and in silver.customer_record_history, and erasing it erases the record's customer."""
    cfg, base, key = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    typo = "bora.yilmz@mail.com.tr"  # Bora's address until the CRM corrected it on 2025-11-02
    earlier = ("CRM-B2", typo, "0532 123 45 67", "TR", "Bora", "Yilmaz", "2025-06-01T10:00:00")
    delivered = [(*r[:-2], "/landing/crm-2025-06.txt", 1) for r in _meta([earlier], "crm", 0, 3)]  # an older landing file
    lake.append("bronze", "crm", spark.createDataFrame(delivered, _bronze_frames(spark)["crm"].schema))
    versions = [
        ("crm", "CRM-A1", "DE", "Ana", "Lopez", D(2025, 11, 1, 10), "analopez@gmail.com"),
        ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 11, 2, 10), BORA_IDS["email"]),
        ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 6, 1, 10), typo),
    ]
    lake.overwrite("silver", "customer_record_history", spark.createDataFrame(
        versions, "source string, record_id string, country string, first_name string, last_name string, updated_at timestamp, email_norm string"))
    bora = _markers(key, {**BORA_IDS, "email": typo}, {"cu_bora", "yilmaz", "yilmz", hkey(key, "email", BORA_IDS["email"])})

    report = forget(spark, cfg, [f"email:{typo}"], run_id="erase-typo")

    assert (report.subjects, report.customers, report.records) == (1, 1, 4)  # CRM-B2, WEB-B3, ORD-B2, CON-B2
    for layer in ("bronze", "silver", "gold"):
        for name in lake.tables(layer):
            assert _rows_holding(_table_texts(spark, lake, layer, name), bora) == [], f"{layer}.{name}"
    assert _rows_holding(_parquet_texts(base / "lake"), bora) == []
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-A1"]
    assert _sorted_keys(lake, "silver", "customer_record_history", "record_id") == ["CRM-A1"]
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_ana", "cu_zed"]
    suppressed = {(r.id_type, r.id_key) for r in lake.read("ops", "suppression").collect()}
    assert suppressed == {(t, hkey(key, t, v)) for t, v in {**BORA_IDS, "email": typo}.items()} | {("email", hkey(key, "email", BORA_IDS["email"]))}


def test_a_blocklisted_address_in_an_earlier_version_erases_no_customer(spark, lakehouse):
    cfg, _, key = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    shared = "info@yilmaz-market.com.tr"  # the shop's address, on many customers' records
    lake.overwrite("silver", "customer_record_history", spark.createDataFrame(
        [("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 11, 2, 10), BORA_IDS["email"]), ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 6, 1, 10), shared)],
        "source string, record_id string, country string, first_name string, last_name string, updated_at timestamp, email_norm string"))
    lake.overwrite("gold", "identity_blocklist", spark.createDataFrame(
        [(f"email:{hkey(key, 'email', shared)}", "email", "shared by 40 customers on 40 records", 40, 40)],
        "node string, id_type string, reason string, customers long, records long"))

    report = forget(spark, cfg, [f"email:{shared}"], run_id="erase-shared")

    assert (report.customers, report.records) == (0, 0)
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_ana", "cu_bora", "cu_zed"]
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-A1", "CRM-B2"]


HISTORY_SCHEMA = ("source string, record_id string, country string, first_name string, last_name string, updated_at timestamp, "
                  "email_norm string, phone_e164 string, customer_id string")


def _history(spark, lake: Lake, versions: list[tuple]) -> None:
    """silver.customer_record_history from (source, record_id, country, first, last, updated_at, email, phone)
    versions; a CRM record is its own customer account (customer_id), a legacy record has none."""
    rows = [(*v, v[1] if v[0] == "crm" else None) for v in versions]
    lake.overwrite("silver", "customer_record_history", spark.createDataFrame(rows, HISTORY_SCHEMA))


COUNTRY_AT = {"crm": 3, "web": 4, "shop": 4, "optin": 5}  # position of the country in a raw row of the source


def _append_bronze_version(spark, lake: Lake, source: str, row: tuple, *, file: str) -> None:
    """An earlier version of a record, from an older landing file."""
    meta = [(*r[:-2], file, 1) for r in _meta([row], source, 0, COUNTRY_AT[source])]
    lake.append("bronze", source, spark.createDataFrame(meta, _bronze_frames(spark)[source].schema))


CURRENT_VERSIONS = [
    ("crm", "CRM-A1", "DE", "Ana", "Lopez", D(2025, 11, 1, 10), ANA_IDS["email"], ANA_IDS["phone"]),
    ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2025, 11, 2, 10), BORA_IDS["email"], BORA_IDS["phone"]),
]
BORA_OLD_EMAIL = "bora.old@mail.com.tr"


@pytest.fixture
def bora_once_had_anas_number(spark, lakehouse):
    """Bora's 2023 CRM version carried his old address and the phone number Ana holds now; a consent
    sent to the old address (CON-B9) was never linked to him."""
    cfg, base, key = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    _append_bronze_version(spark, lake, "crm", ("CRM-B2", BORA_OLD_EMAIL, "+49 30 12345678", "TR", "Bora", "Yilmaz", "2023-03-01T10:00:00"), file="/landing/crm-2023.txt")
    _history(spark, lake, [*CURRENT_VERSIONS, ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2023, 3, 1, 10), BORA_OLD_EMAIL, ANA_IDS["phone"])])
    _append_bronze_version(spark, lake, "optin", ("CON-B9", None, BORA_OLD_EMAIL, "marketing_email", "granted", "TR", "2023-03-02T08:00:00"), file="/landing/optin-2023.txt")
    lake.append("silver", "identifiers", spark.createDataFrame(
        [("optin", "CON-B9", "email", hkey(key, "email", BORA_OLD_EMAIL), False, "TR", D(2023, 3, 2, 8))], lake.read("silver", "identifiers").schema))
    lake.append("silver", "consents", spark.createDataFrame(
        [("optin", "CON-B9", "TR", "email", hkey(key, "email", BORA_OLD_EMAIL), "marketing_email", True, D(2023, 3, 2, 8), None, True)],
        lake.read("silver", "consents").schema))
    return cfg, base, key, lake


def test_erasing_a_person_reaches_their_old_address_but_not_the_number_someone_else_holds_now(spark, bora_once_had_anas_number):
    """Erasing Bora: the consent sent to his old address goes too and the old address is kept out at
    intake; the phone number his old version carried is Ana's now, so Ana's rows stay and it is not
    suppressed."""
    cfg, _, key, lake = bora_once_had_anas_number

    report = forget(spark, cfg, [f"email:{BORA_IDS['email']}"], run_id="erase-bora")

    assert (report.customers, report.records) == (1, 5)  # cu_bora: CRM-B2, WEB-B3, ORD-B2, CON-B2, and CON-B9
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-A1"]  # both of Bora's versions went
    assert _sorted_keys(lake, "bronze", "optin", "_record_key") == ["CON-A1"]
    assert _sorted_keys(lake, "silver", "consents", "record_id") == ["CON-A1"]
    assert _sorted_keys(lake, "silver", "customer_record_history", "record_id") == ["CRM-A1"]
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_ana", "cu_zed"]
    assert sorted(r.record_id for r in lake.read("silver", "identifiers").where(F.col("id_type") == "phone").collect()) == ["CRM-A1"]
    suppressed = {(r.id_type, r.id_key) for r in lake.read("ops", "suppression").collect()}
    assert suppressed == {(t, hkey(key, t, v)) for t, v in BORA_IDS.items()} | {("email", hkey(key, "email", BORA_OLD_EMAIL))}


def test_erasing_the_new_holder_of_a_recycled_number_leaves_its_old_holder(spark, bora_once_had_anas_number):
    cfg, _, key, lake = bora_once_had_anas_number

    report = forget(spark, cfg, [f"phone:{ANA_IDS['phone']}"], run_id="erase-ana")

    assert (report.customers, report.blocked_subjects) == (1, ())
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_bora", "cu_zed"]
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-B2", "CRM-B2"]  # Bora's 2023 version too: the number was his then
    assert _sorted_keys(lake, "silver", "customer_record_history", "record_id") == ["CRM-B2", "CRM-B2"]


def test_one_person_with_a_crm_and_a_legacy_record_is_not_a_shared_identifier(spark, lakehouse):
    """Caps count customer accounts, as in the graph: Bora's CRM record and his legacy record both
    carried his old number once; with a cap of one account per phone, it is still one person."""
    _, base, key = lakehouse
    cfg = parse_config({**_config(base).model_dump(mode="json"), "identity": {"per_type_caps": {"phone": 1}}}, base_dir=base)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    old_phone = "+905559876543"
    _history(spark, lake, [
        *CURRENT_VERSIONS,
        ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2022, 5, 1, 10), BORA_IDS["email"], old_phone),
        ("legacy", "L-77", "TR", "Bora", "Yilmaz", D(2019, 1, 1, 10), None, old_phone),
    ])

    report = forget(spark, cfg, [f"phone:{old_phone}"], run_id="erase-old-phone")

    assert (report.customers, report.blocked_subjects) == (1, ())
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_ana", "cu_zed"]
    assert _sorted_keys(lake, "silver", "customer_record_history", "record_id") == ["CRM-A1"]  # L-77 went with CRM-B2


def test_identifiers_that_name_no_single_person_erase_nothing(spark, lakehouse):
    """A blocklisted (shared) cookie, a configured junk address and an address that earlier versions
    of more records carried than the per-type cap: each names no one, so nothing is erased or suppressed."""
    _, base, key = lakehouse
    cfg = parse_config(
        {**_config(base).model_dump(mode="json"), "identity": {"junk_values": ["frontdesk@hotel-berlin.de"], "per_type_caps": {"email": 1}}}, base_dir=base
    )
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    lake.overwrite("gold", "identity_blocklist", spark.createDataFrame(
        [(f"cookie_id:{hkey(key, 'cookie_id', ANA_IDS['cookie_id'])}", "cookie_id", "shared by 3 customers on 9 records", 3, 9)],
        "node string, id_type string, reason string, customers long, records long"))
    _history(spark, lake, [
        *CURRENT_VERSIONS,
        ("crm", "CRM-A1", "DE", "Ana", "Lopez", D(2024, 1, 1, 10), "frontdesk@hotel-berlin.de", None),
        ("crm", "CRM-A1", "DE", "Ana", "Lopez", D(2023, 1, 1, 10), "reception@hotel-adlon.de", None),  # two accounts, cap one
        ("crm", "CRM-B2", "TR", "Bora", "Yilmaz", D(2023, 1, 1, 10), "reception@hotel-adlon.de", None),
    ])
    versions = {f"{layer}.{n}": lake.version(layer, n) for layer in ("bronze", "silver", "gold") for n in lake.tables(layer)}

    report = forget(spark, cfg, [f"cookie_id:{ANA_IDS['cookie_id']}", "email:frontdesk@hotel-berlin.de", "email:reception@hotel-adlon.de"], run_id="erase-shared")

    assert (report.customers, report.records, report.rows_removed, report.suppressed_keys) == (0, 0, {}, 0)
    assert report.blocked_subjects == (1, 2, 3)
    assert {f"{layer}.{n}": lake.version(layer, n) for layer in ("bronze", "silver", "gold") for n in lake.tables(layer)} == versions


def test_a_customers_pre_merge_uids_are_erased_with_it(spark, lakehouse):
    """Rows an earlier run wrote under uids since merged into the customer (scores, segment history,
    export state) belong to the same person: a subject naming any uid of the chain erases them all."""
    cfg, _, _ = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    at = D(2025, 1, 1)
    lake.overwrite("gold", "customer_id_registry", spark.createDataFrame([
        ("cu_ana", "active", None, None, at, "r1", "r1"),
        ("cu_bora", "active", None, None, at, "r1", "r3"),
        ("cu_bora_2024", "merged", "cu_bora", None, at, "r1", "r3"),
        ("cu_bora_2023", "merged", "cu_bora_2024", None, at, "r1", "r2"),
    ], "customer_uid string, status string, merged_into string, split_from string, created_at timestamp, created_run_id string, updated_run_id string"))
    lake.append("gold", "customer_scores", spark.createDataFrame(
        [("cu_bora_2023", date(2024, 6, 1), 0.4), ("cu_bora_2024", date(2025, 1, 1), 0.5)], "customer_uid string, scoring_date date, churn double"))
    lake.append("gold", "segment_membership", spark.createDataFrame([("buyers", "cu_bora_2024", "r2")], "segment string, customer_uid string, entered_run_id string"))

    report = forget(spark, cfg, ["customer_uid:cu_bora_2024"], run_id="erase-old-uid")

    assert report.customers == 3
    for table in ("customer_scores", "segment_membership", "customer_id_registry", "customer_profile"):
        assert [u for u in _sorted_keys(lake, "gold", table, "customer_uid") if u.startswith("cu_bora")] == [], table
    assert _sorted_keys(lake, "gold", "customer_scores", "customer_uid") == ["cu_ana"]
    assert _sorted_keys(lake, "bronze", "crm", "_record_key") == ["CRM-A1"]


def test_a_merge_into_a_customer_later_split_is_not_followed(spark, lakehouse):
    """cu_bora_2024 was merged into cu_bora, which a later run split (cu_carl): which part
    cu_bora_2024's person went to is unknown, so erasing cu_bora leaves cu_bora_2024's rows."""
    cfg, _, _ = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    at = D(2025, 1, 1)
    lake.overwrite("gold", "customer_id_registry", spark.createDataFrame([
        ("cu_bora", "active", None, None, at, "r1", "r4"),
        ("cu_bora_2024", "merged", "cu_bora", None, at, "r1", "r3"),
        ("cu_carl", "active", None, "cu_bora", at, "r4", "r4"),
    ], "customer_uid string, status string, merged_into string, split_from string, created_at timestamp, created_run_id string, updated_run_id string"))
    lake.append("gold", "customer_scores", spark.createDataFrame([("cu_bora_2024", date(2025, 1, 1), 0.5)], "customer_uid string, scoring_date date, churn double"))

    report = forget(spark, cfg, ["customer_uid:cu_bora"], run_id="erase-bora")

    assert report.customers == 1
    assert _sorted_keys(lake, "gold", "customer_scores", "customer_uid") == ["cu_ana", "cu_bora_2024"]
    assert _sorted_keys(lake, "gold", "customer_id_registry", "customer_uid") == ["cu_bora_2024", "cu_carl"]


def test_erasure_reaches_bronze_rows_silver_never_keyed_and_their_quality_rejects(spark, lakehouse):
    """An order of Bora's that the quality gate rejected and a re-delivery of his event under a new id
    never reached silver.identifiers; intake's own check finds them in bronze, and their rows in
    silver.quality_rejects and silver.event_index go too."""
    cfg, base, key = lakehouse
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    _append_bronze_version(spark, lake, "shop", ("ORD-B9", "CRM-B2", -80.0, "EUR", "TR", "2025-12-04T12:00:00"), file="/landing/shop-2.txt")
    _append_bronze_version(spark, lake, "shop", ("ORD-A9", "CRM-A1", -5.0, "EUR", "DE", "2025-12-04T12:00:00"), file="/landing/shop-3.txt")
    _append_bronze_version(spark, lake, "web", ("WEB-B3b", "CRM-B2", None, "add_to_cart", "TR", "2024-01-05T09:00:00"), file="/landing/web-2.txt")
    rejects = [(f"s-{r}", "orders", json.dumps({"source": "shop", "record_id": r}, separators=(",", ":")), "amount_non_negative", "error", D(2026, 1, 10))
               for r in ("ORD-B9", "ORD-A9")]
    lake.overwrite("silver", "quality_rejects", spark.createDataFrame(
        rejects, "run_id string, table string, record_key string, expectation string, severity string, rejected_at timestamp"))
    lake.overwrite("silver", "event_index", spark.createDataFrame(
        [("web", r[0], f"h-{r[0]}") for r in WEB] + [("web", "WEB-B3b", "h-WEB-B3")], "source string, record_id string, content_hash string"))

    report = forget(spark, cfg, [f"email:{BORA_IDS['email']}"], run_id="erase-bora")

    assert (report.customers, report.records) == (1, 6)  # the four resolved records, ORD-B9 and WEB-B3b
    assert _sorted_keys(lake, "bronze", "shop", "_record_key") == ["ORD-A1", "ORD-A9"]
    assert _sorted_keys(lake, "bronze", "web", "_record_key") == ["WEB-A1", "WEB-A2", "WEB-Z4"]
    assert [json.loads(k)["record_id"] for k in _sorted_keys(lake, "silver", "quality_rejects", "record_key")] == ["ORD-A9"]
    assert _sorted_keys(lake, "silver", "event_index", "record_id") == ["WEB-A1", "WEB-A2", "WEB-Z4"]
    assert _rows_holding(_parquet_texts(base / "lake"), _markers(key, BORA_IDS, {"cu_bora", "ORD-B9", "WEB-B3b", "-80.0"})) == []


def test_an_objection_to_profiling_withdraws_the_customers_earlier_scores(spark, tmp_path):
    from cdp_spark.privacy.objection import objecting_customers, withdraw_scores

    cfg = _config(tmp_path)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    lake.overwrite("gold", "customer_profile", spark.createDataFrame(
        [("cu_ana", False), ("cu_bora", True), ("cu_zed", None)], "customer_uid string, consent_profiling boolean"))
    scores = spark.createDataFrame(
        [("cu_ana", date(2025, 12, 1), 0.3), ("cu_ana", date(2026, 1, 1), 0.2), ("cu_bora", date(2026, 1, 1), 0.7), ("cu_zed", date(2026, 1, 1), 0.1)],
        "customer_uid string, scoring_date date, churn double",
    )
    lake.overwrite("gold", "customer_scores", scores)

    objecting = objecting_customers(lake, cfg)
    assertDataFrameEqual(objecting, spark.createDataFrame([("cu_ana",)], "customer_uid string"))  # no record (cu_zed) is no objection
    assert withdraw_scores(spark, lake, objecting, cfg) == 2
    assertDataFrameEqual(lake.read("gold", "customer_scores"), scores.where(F.col("customer_uid") != "cu_ana"))
    off = parse_config({**cfg.model_dump(mode="json"), "privacy": {"objecting_purposes_block_scores": False}}, base_dir=tmp_path)
    assert objecting_customers(lake, off) is None


def test_a_national_id_is_kept_out_at_intake_keyed_as_silver_keys_it(spark):
    from cdp_spark.privacy.subjects import parse_subject

    key = b"k" * 32
    suppressed = spark.createDataFrame([(hkey(key, "national_id", "DE:T22000129"),)], "id_key string")
    rows = spark.createDataFrame(
        [("L1", "t22 000-129", "Germany"), ("L2", "T22000130", "DE"), ("L3", "T22000129", "AT"), ("L4", None, "DE")], "legacy_id string, nid string, country string"
    )
    kept, dropped = apply_suppression(rows, key=key, suppressed=suppressed, columns={"national_id": "nid"}, country_col="country")
    assertDataFrameEqual(dropped, rows.where(F.col("legacy_id") == "L1"))  # same id in another country is someone else
    assertDataFrameEqual(kept, rows.where(F.col("legacy_id") != "L1"))
    assert parse_subject("national_id:de:T22 000 129", sources=()).country == "DE"
    with pytest.raises(ErasureRequestError, match="national_id:<CC>:<id>"):
        parse_subject("national_id:T22000129", sources=())


def test_apply_suppression_standardizes_raw_values_like_silver(spark):
    key = b"k" * 32
    suppressed = spark.createDataFrame([(hkey(key, "email", "analopez@gmail.com"),), (hkey(key, "phone", "+905321234567"),)], "id_key string")
    raw = spark.createDataFrame(
        [("1", " ANA.Lopez+news@GoogleMail.com ", None, "DE"), ("2", None, "0532 123 45 67", "Turkey"), ("3", "ana@lopez.de", "0532 123 45 67", "DE"),
         ("4", None, None, None)],
        "id string, mail string, tel string, ctry string",
    )
    kept, dropped = apply_suppression(raw, key=key, suppressed=suppressed, columns={"email": "mail", "phone": "tel"}, country_col="ctry")
    assertDataFrameEqual(dropped, raw.where(F.col("id").isin("1", "2")))
    assertDataFrameEqual(kept, raw.where(F.col("id").isin("3", "4")))  # 0532... read in DE is another number


@pytest.mark.slow
def test_forget_through_a_semi_join_matches_the_in_list_result(spark, lakehouse):
    cfg, base, key = lakehouse
    cfg = _config(base, erasure_in_list_max=1)  # every key set is over the bound: IN-subqueries on temp views
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    report = forget(spark, cfg, ["phone:DE:030 12345678", "customer_uid:cu_zed"], run_id="erase-3")
    assert (report.customers, report.records) == (2, 6)  # Ana's 4 + her email-only consent + the stranger's event
    assert _sorted_keys(lake, "bronze", "web", "_record_key") == ["WEB-B3"]
    assert _sorted_keys(lake, "silver", "consents", "record_id") == ["CON-B2"]
    assert _sorted_keys(lake, "gold", "identity_map", "record_id") == ["CON-B2", "CRM-B2", "ORD-B2", "WEB-B3"]
    assert [v.name for v in spark.catalog.listTables() if v.name.startswith("_cdp_")] == []


def test_purge_drops_stale_anonymous_visitors_and_events_past_their_country_retention(spark, lakehouse):
    cfg, base, key = lakehouse
    cfg = _config(base, default_retention_days=3650, retention_days_by_country={"TR": 365})
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    out = purge_expired(spark, cfg, run_date=date(2026, 1, 15), run_id="purge-1")
    # WEB-Z4: cookie-only visitor unseen for > 395 days; WEB-A2 is as old but Ana's cookie (tied to a login): kept.
    # WEB-B3: a Turkish event older than TR's 365 days; ORD-B2 (TR, recent) and German events stay.
    assert (out["anonymous_customers"], out["anonymous_records"], out["expired_events"]) == (1, 1, 1)
    assert _sorted_keys(lake, "bronze", "web", "_record_key") == ["WEB-A1", "WEB-A2"]
    assert _sorted_keys(lake, "silver", "interactions", "record_id") == ["WEB-A1", "WEB-A2"]
    assert _sorted_keys(lake, "silver", "orders", "record_id") == ["ORD-A1", "ORD-B2"]
    assert _sorted_keys(lake, "gold", "customer_profile", "customer_uid") == ["cu_ana", "cu_bora"]
    assert "WEB-Z4" not in _sorted_keys(lake, "gold", "identity_map", "record_id")
    assert _rows_holding(_parquet_texts(base / "lake"), {"WEB-Z4", "WEB-B3", "ck-zed-999"}) == []


def test_purge_drops_quarantined_lines_past_their_retention(spark, lakehouse):
    cfg, base, _ = lakehouse
    cfg = _config(base, quarantine_retention_days=30)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    out = purge_expired(spark, cfg, run_date=date(2026, 1, 15), run_id="purge-q")
    assert out["rows_removed"]["bronze.quarantine"] == 1
    assert _sorted_keys(lake, "bronze", "quarantine", "line") == [8]  # ingested 2026-01-10; line 7 (2025-12-01) is past 30 days
    assert _rows_holding(_parquet_texts(base / "lake"), {"CRM-A9"}) == []


def test_pii_scan_finds_raw_contacts_but_not_hashes_or_dates(spark, tmp_path):
    cfg = _config(tmp_path)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    rng = random.Random(11)
    digests = [hashlib.sha256(str(rng.random()).encode()).hexdigest() for _ in range(500)]
    rows = [(f"cu_{i}", d, "2024-01-05 10:20:30", None) for i, d in enumerate(digests)]
    rows += [("cu_x", digests[0], "2024-01-05", "call +905321234567 or mail ana@lopez.com.tr"), ("cu_y", digests[1], "2024", "0532 123 45 67")]
    # not phones: a Brazilian postcode with a leading 0, and an event id with a long digit run
    rows += [("cu_z", digests[2], "2024", "00197146"), ("we-0027724096783969", digests[3], "2024", None)]
    # nor fractions of decimal numbers (fitted model parameters as JSON)
    rows += [("cu_w", digests[4], "2024", '{"q": 4.049842559581345, "log_likelihood": -931.0552534945732, "p": 0.0123456789}')]
    lake.overwrite("gold", "customer_profile", spark.createDataFrame(rows, "customer_uid string, email_sha256 string, updated string, note string"))
    lake.overwrite("gold", "customer_scores", spark.createDataFrame([("cu_1", 0.5)], "customer_uid string, churn double"))
    dest = ExportConfig(name="ads", segments=("s",), fields=("email_sha256",), format="csv")
    leak = spark.createDataFrame([("cu_1", digests[2]), ("cu_2", "bora@mail.com.tr")], "customer_uid string, email_sha256 string")
    write_export(leak, dest, str(tmp_path / "exports" / "ads" / "r1"), run_id="r1", created_at=D(2026, 1, 1), counts={"rows": 2})
    name = json.loads((tmp_path / "exports" / "ads" / "r1" / "manifest.json").read_text())["files"][0]["name"]

    assert scan_for_raw_pii(spark, cfg) == [
        "gold.customer_profile.note: 1 values look like emails",
        "gold.customer_profile.note: 2 values look like phone numbers",
        f"exports/ads/r1/{name}.email_sha256: 1 values look like emails",
    ]


def test_read_requests_skips_comments_and_bad_subjects_fail_before_anything_changes(spark, lakehouse, tmp_path):
    cfg, base, key = lakehouse
    requests = tmp_path / "requests.txt"
    requests.write_text("# ticket 123\nemail:ana@x.de\n\n  phone:TR:0532 123 45 67  \ncrm:CRM-B2\n")
    assert read_requests(requests) == ["email:ana@x.de", "phone:TR:0532 123 45 67", "crm:CRM-B2"]
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    versions = {n: lake.version("bronze", n) for n in lake.tables("bronze")}
    with pytest.raises(ErasureRequestError, match="unknown subject type 'fax'"):
        forget(spark, cfg, ["fax:0301234"], run_id="bad-1")
    with pytest.raises(ErasureRequestError, match="#2: phone"):
        forget(spark, cfg, ["email:ana@x.de", "phone:0301234"], run_id="bad-2")  # national number without a country
    assert {n: lake.version("bronze", n) for n in lake.tables("bronze")} == versions


def test_residency_split_routes_countries_to_their_roots(spark, tmp_path):
    cfg = parse_config({"paths": {"lakehouse": "/lake/eu"}, "privacy": {"residency": {"tr": "/lake/tr", "RU": "/lake/ru"}}}, base_dir=tmp_path)
    df = spark.createDataFrame([("1", "TR"), ("2", "DE"), ("3", None), ("4", "ru"), ("5", "tr ")], "id string, country string")
    parts = residency_split(df, "country", cfg)
    assert sorted(parts) == ["/lake/eu", "/lake/ru", "/lake/tr"]
    assertDataFrameEqual(parts["/lake/tr"], df.where(F.col("id").isin("1", "5")))
    assertDataFrameEqual(parts["/lake/ru"], df.where(F.col("id") == "4"))
    assertDataFrameEqual(parts["/lake/eu"], df.where(F.col("id").isin("2", "3")))


def test_apply_text_suppression_finds_erased_identifiers_in_unparsed_lines(spark):
    from cdp_spark.privacy.suppression import apply_text_suppression

    key = b"k" * 32
    suppressed = spark.createDataFrame(
        [(hkey(key, "email", "analopez@gmail.com"),), (hkey(key, "phone", "+905321234567"),), (hkey(key, "loyalty_id", "LOY-778"),)], "id_key string"
    )
    rows = spark.createDataFrame(
        [
            ("f", 1, '{"mail": "ANA.Lopez+x@googlemail.com", "n": '),  # e-mail inside broken JSON
            ("f", 2, "9,Ana,+90 532 123 45 67,oops,extra"),  # international phone in a CSV line
            ("f", 3, '{"card": "loy-778"'),  # a loyalty id, lower-cased in the source
            ("f", 4, "10,Bob,bob@example.com,+49 30 1234567"),  # nobody erased
            ("f", None, None),  # no text to search
        ],
        "file string, line int, raw string",
    )
    kept, dropped = apply_text_suppression(rows, text_col="raw", row_key=["file", "line"], key=key, suppressed=suppressed)
    assertDataFrameEqual(dropped, rows.where(F.col("line").isin(1, 2, 3)))
    assertDataFrameEqual(kept, rows.where(~F.col("line").isin(1, 2, 3) | F.col("line").isNull()))
