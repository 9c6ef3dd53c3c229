"""Bronze ingestion end to end: tiny landing files in tmp_path, one run_bronze call per scenario."""

from __future__ import annotations

import os
import random
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import parse_config
from cdp_spark.ingest import _faults, run_bronze
from cdp_spark.lake import Lake

TS = "2025-03-01T10:15:00+03:00"

CRM = {
    "name": "crm",
    "path": "crm/*.csv",
    "format": "csv",
    "options": {"header": "true"},
    "country_column": "country",
    "event_time_column": "updated_at",
    "record_key": "customer_id",
    "kind": "customer",
    "max_record_bytes": 200,
}
ORDERS = {
    "name": "orders",
    "path": "orders/*.jsonl",
    "format": "json",
    "country_column": "country",
    "event_time_column": "order_ts",
    "record_key": "order_id",
    "kind": "order",
}
POS = {
    "name": "pos",
    "path": "pos/*.parquet",
    "format": "parquet",
    "country": "DE",
    "event_time_column": "txn_ts",
    "timestamp_format": "yyyy-MM-dd HH:mm:ss",
    "record_key": "transaction_id",
    "kind": "pos",
}


def _config(tmp_path: Path, *sources: dict):
    return parse_config(
        {"paths": {"landing": str(tmp_path / "landing"), "lakehouse": str(tmp_path / "lake")}, "sources": list(sources)},
        base_dir=tmp_path,
    )


def _write(tmp_path: Path, rel: str, content: bytes) -> Path:
    path = tmp_path / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _lines(*lines: str, newline_at_end: bool = True) -> bytes:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    return text.encode("utf-8")


def _lake(spark, tmp_path: Path) -> Lake:
    return Lake(spark, str(tmp_path / "lake"), engine="delta-rs")


def _base(col: str):
    return F.regexp_extract(F.col(col), r"([^/]+)$", 1)


def _keys(spark, tmp_path: Path, source: str, *extra: str):
    return _lake(spark, tmp_path).read("bronze", source).select(_base("_file_path").alias("file"), "_line", "_record_key", *extra)


def _crm_header() -> str:
    return "customer_id,name,country,updated_at"


def _write_bad_inputs(tmp_path: Path) -> None:
    crm = b"\n".join(
        [
            _crm_header().encode(),
            f"1,Ayse,TR,{TS}".encode(),  # 2 good
            f"2,Bob,DE,{TS},extra".encode(),  # 3 too many fields
            b"3,Carl,DE",  # 4 too few fields
            b"4,\xdd\xfeik,TR," + TS.encode(),  # 5 Latin-5 bytes in a UTF-8 file
            _crm_header().encode(),  # 6 duplicate header
            f",Dan,DE,{TS}".encode(),  # 7 missing key
            f'"  ",Eve,DE,{TS}'.encode(),  # 8 blank key
            b"7,Fay,DE,yesterday",  # 9 unparseable event time
            f"8,Gus,XX,{TS}".encode(),  # 10 unassigned country code
            f"9,Hal,??,{TS}".encode(),  # 11 symbols as country
            f"10,{'x' * 250},DE,{TS}".encode(),  # 12 oversized (max_record_bytes=200)
            b"11,Ni\x00l,DE," + TS.encode(),  # 13 NUL byte
            f"12,Ola,Deutschland,{TS}".encode(),  # 14 good: a local spelling is silver's job
            b"13,Pat,D",  # 15 last line cut (no newline at the end)
        ]
    )
    _write(tmp_path, "crm/a.csv", crm)
    _write(tmp_path, "crm/empty.csv", b"")
    _write(tmp_path, "crm/garbage.csv", random.Random(7).randbytes(600))
    deep = "[" * 40 + "]" * 40
    orders = _lines(
        f'{{"order_id":"o1","order_ts":"{TS}","country":"DE","amount":12.5,"items":[{{"sku":"a"}}]}}',  # 1 good
        '{"order_id":"o2", "order_ts": ',  # 2 malformed
        "[1,2]",  # 3 array, not an object
        "42",  # 4 number, not an object
        f'{{"order_id":"o5","order_ts":"{TS}","x":{deep}}}',  # 5 nested too deep
        f'{{"order_id":"o6","order_id":"o7","order_ts":"{TS}"}}',  # 6 duplicate key
        f'{{"order_ts":"{TS}","country":"DE"}}',  # 7 missing key
        '{"order_id":"o8","order_ts":"2025-03-01T10:',  # 8 truncated last line
        newline_at_end=False,
    )
    _write(tmp_path, "orders/o1.jsonl", orders)
    pos = tmp_path / "landing" / "pos"
    pos.mkdir(parents=True)
    pq.write_table(
        pa.table({"transaction_id": ["t1", None, "t3"], "txn_ts": ["2025-03-01 10:00:00", "2025-03-01 11:00:00", "03/01/2025"], "amount": [1.5, 2.0, 3.0]}),
        pos / "p1.parquet",
    )
    _write(tmp_path, "pos/p2.parquet", b"PAR1" + b"\x00not really parquet\x00" * 3 + b"PAR1")


def test_bad_inputs_are_quarantined_with_reason_and_line_while_good_rows_land(spark, tmp_path):
    _write_bad_inputs(tmp_path)
    cfg = _config(tmp_path, CRM, ORDERS, POS)

    report = run_bronze(spark, cfg, run_id="r1", run_date=date(2026, 11, 22))

    lake = _lake(spark, tmp_path)
    quarantine = lake.read("bronze", "quarantine").select("source", _base("file_path").alias("file"), "line", "level", "reason")
    expected = [
        ("crm", "a.csv", 3, "record", "CSV row has more fields than the header"),
        ("crm", "a.csv", 4, "record", "CSV row has fewer fields than the header"),
        ("crm", "a.csv", 5, "record", "invalid UTF-8 (wrong encoding?)"),
        ("crm", "a.csv", 6, "record", "duplicate CSV header line"),
        ("crm", "a.csv", 7, "record", "missing record key"),
        ("crm", "a.csv", 8, "record", "blank record key"),
        ("crm", "a.csv", 9, "record", "unparseable event timestamp"),
        ("crm", "a.csv", 10, "record", "invalid country value"),
        ("crm", "a.csv", 11, "record", "invalid country value"),
        ("crm", "a.csv", 12, "record", "record larger than max_record_bytes"),
        ("crm", "a.csv", 13, "record", "NUL byte in record"),
        ("crm", "a.csv", 15, "record", "truncated file (last line cut)"),
        ("crm", "empty.csv", None, "file", "empty file"),
        ("crm", "garbage.csv", None, "file", "binary content in a text source"),
        ("orders", "o1.jsonl", 2, "record", "malformed JSON"),
        ("orders", "o1.jsonl", 3, "record", "JSON value is not an object"),
        ("orders", "o1.jsonl", 4, "record", "JSON value is not an object"),
        ("orders", "o1.jsonl", 5, "record", "JSON nested deeper than the bound"),
        ("orders", "o1.jsonl", 6, "record", "duplicate field name in JSON object"),
        ("orders", "o1.jsonl", 7, "record", "missing record key"),
        ("orders", "o1.jsonl", 8, "record", "truncated file (last line cut)"),
        ("pos", "p1.parquet", 1, "record", "missing record key"),
        ("pos", "p1.parquet", 2, "record", "unparseable event timestamp"),
    ]
    actual_reasons = quarantine.where(F.col("source") != "pos").unionByName(
        quarantine.where((F.col("source") == "pos") & (F.col("level") == "record"))
    )
    assertDataFrameEqual(actual_reasons, spark.createDataFrame(expected, quarantine.schema))
    corrupt = quarantine.where(F.col("level") == "file").where(F.col("source") == "pos").select("file", "reason").first()
    assert corrupt.file == "p2.parquet" and corrupt.reason.startswith("corrupt or unreadable Parquet file: ")

    # Good rows of the same files still land, faithfully as strings (CSV/JSON) or typed (Parquet).
    assertDataFrameEqual(
        _keys(spark, tmp_path, "crm", "name", "country"),
        [("a.csv", 2, "1", "Ayse", "TR"), ("a.csv", 14, "12", "Ola", "Deutschland")],
    )
    assertDataFrameEqual(_keys(spark, tmp_path, "orders", "amount", "items"), [("o1.jsonl", 1, "o1", "12.5", '[{"sku":"a"}]')])
    assertDataFrameEqual(_keys(spark, tmp_path, "pos", "amount", "_country"), [("p1.parquet", 0, "t1", 1.5, "DE")])

    # The invalid UTF-8 record keeps its bytes (base64) so nothing is lost.
    latin5 = lake.read("bronze", "quarantine").where(F.col("line") == 5).where(F.col("source") == "crm").select("raw", "raw_encoding")
    assert [tuple(r) for r in latin5.collect()] == [("NCzd/mlrLFRSLDIwMjUtMDMtMDFUMTA6MTU6MDArMDM6MDA=", "base64")]

    # Rows read = bronze + quarantined per file, in the report and the ingestion log.
    logged = lake.read("ops", "ingestion_log").select(_base("file_path").alias("file"), "status", "rows_read", "rows_bronze", "rows_quarantined")
    assertDataFrameEqual(
        logged.where(F.col("status") == "ingested").drop("status"),
        [
            ("a.csv", 14, 2, 12),
            ("empty.csv", 0, 0, 0),
            ("garbage.csv", 0, 0, 0),
            ("o1.jsonl", 8, 1, 7),
            ("p1.parquet", 3, 1, 2),
            ("p2.parquet", 0, 0, 0),
        ],
    )
    assert [(s.source, s.rows_read, s.rows_bronze, s.rows_quarantined, s.files_quarantined) for s in report.sources] == [
        ("crm", 14, 2, 12, 2),
        ("orders", 8, 1, 7, 0),
        ("pos", 3, 1, 2, 1),
    ]
    assert (report.rows_in, report.rows_out) == (25, 4)


def _crm_file(*rows: str) -> bytes:
    return _lines(_crm_header(), *rows)


def test_rerun_over_the_same_landing_data_ingests_nothing(spark, tmp_path):
    landed = _write(tmp_path, "crm/a.csv", _crm_file(f"1,Ayse,TR,{TS}", f"2,Bob,DE,{TS}"))
    cfg = _config(tmp_path, CRM)
    run_bronze(spark, cfg, run_id="r1")
    lake = _lake(spark, tmp_path)
    versions = (lake.version("bronze", "crm"), lake.version("ops", "ingestion_log"))

    second = run_bronze(spark, cfg, run_id="r2")
    os.utime(landed, (1_900_000_000, 1_900_000_000))  # touched: new mtime, same content
    third = run_bronze(spark, cfg, run_id="r3")

    for report in (second, third):
        crm = report.source("crm")
        assert (crm.files_seen, crm.files_ingested, crm.files_skipped, crm.rows_read) == (1, 0, 1, 0)
    assert (lake.version("bronze", "crm"), lake.version("ops", "ingestion_log")) == versions
    assertDataFrameEqual(_keys(spark, tmp_path, "crm"), [("a.csv", 2, "1"), ("a.csv", 3, "2")])


def test_redelivered_file_lands_again_marked_and_a_new_column_evolves_the_schema(spark, tmp_path):
    landed = _write(tmp_path, "crm/a.csv", _crm_file(f"1,Ayse,TR,{TS}", f"2,Bob,DE,{TS}"))
    cfg = _config(tmp_path, CRM)
    run_bronze(spark, cfg, run_id="r1")
    landed.write_bytes(_crm_file(f"1,Ayse,TR,{TS}", f"2,Bobby,DE,{TS}"))
    os.utime(landed, (1_900_000_000, 1_900_000_000))
    _write(tmp_path, "crm/b.csv", _lines("customer_id,name,country,updated_at,email", f"3,Cem,TR,{TS},cem@example.com"))

    report = run_bronze(spark, cfg, run_id="r2")

    assert report.source("crm").files_ingested == 2
    lake = _lake(spark, tmp_path)
    assertDataFrameEqual(
        _keys(spark, tmp_path, "crm", "name", "email", "_redelivery", "_run_id"),
        [
            ("a.csv", 2, "1", "Ayse", None, False, "r1"),
            ("a.csv", 3, "2", "Bob", None, False, "r1"),
            ("a.csv", 2, "1", "Ayse", None, True, "r2"),
            ("a.csv", 3, "2", "Bobby", None, True, "r2"),
            ("b.csv", 2, "3", "Cem", "cem@example.com", False, "r2"),
        ],
    )
    drift = lake.read("ops", "bronze_schema_drift").select("source", _base("file_path"), "column", "old_type", "new_type", "action", "run_id")
    assertDataFrameEqual(drift, [("crm", "b.csv", "email", None, "string", "added_column", "r2")])


def test_parquet_type_conflict_goes_to_rescued_data_and_drift_log(spark, tmp_path):
    pos = tmp_path / "landing" / "pos"
    pos.mkdir(parents=True)
    pq.write_table(pa.table({"transaction_id": ["t1"], "txn_ts": ["2025-03-01 10:00:00"], "amount": [1.5]}), pos / "p1.parquet")
    pq.write_table(
        pa.table({"transaction_id": ["t2"], "txn_ts": ["2025-03-01 11:00:00"], "amount": ["2,50"], "store_id": [7]}), pos / "p2.parquet"
    )

    run_bronze(spark, _config(tmp_path, POS), run_id="r1")

    lake = _lake(spark, tmp_path)
    assertDataFrameEqual(
        _keys(spark, tmp_path, "pos", "amount", "store_id", "_rescued_data"),
        [("p1.parquet", 0, "t1", 1.5, None, None), ("p2.parquet", 0, "t2", None, 7, '{"amount":"2,50"}')],
    )
    drift = lake.read("ops", "bronze_schema_drift").select(_base("file_path"), "column", "old_type", "new_type", "action")
    assertDataFrameEqual(
        drift,
        [("p2.parquet", "amount", "double", "string", "type_conflict_rescued"), ("p2.parquet", "store_id", None, "bigint", "added_column")],
    )


class _SimulatedCrash(BaseException):
    """Stands in for os._exit: nothing after the fault point runs."""


def test_crash_between_data_commit_and_bookkeeping_does_not_double_ingest(spark, tmp_path, monkeypatch):
    _write(tmp_path, "crm/a.csv", _crm_file(f"1,Ayse,TR,{TS}", f"2,Bob,DE,{TS}", "3,bad"))
    cfg = _config(tmp_path, CRM)

    def crash(name: str) -> None:
        raise _SimulatedCrash(name)

    monkeypatch.setattr(_faults, "_crash", crash)
    monkeypatch.setenv(_faults.ENV_VAR, "bronze.after_data_commit")
    with pytest.raises(_SimulatedCrash):
        run_bronze(spark, cfg, run_id="crashed")
    monkeypatch.delenv(_faults.ENV_VAR)
    lake = _lake(spark, tmp_path)
    data_version = lake.version("bronze", "crm")
    statuses = lake.read("ops", "ingestion_log").select(_base("file_path"), "status", "batch")
    assertDataFrameEqual(statuses, [("a.csv", "planned", 1)])
    # A file landing after the crash is not part of the interrupted batch.
    _write(tmp_path, "crm/b.csv", _crm_file(f"4,Cem,TR,{TS}"))

    recovered = run_bronze(spark, cfg, run_id="recovery").source("crm")
    following = run_bronze(spark, cfg, run_id="next").source("crm")

    assert (recovered.recovered, recovered.batch, recovered.files_ingested, recovered.rows_bronze, recovered.rows_quarantined) == (
        True, 1, 1, 2, 1,
    )
    assert (following.recovered, following.batch, following.files_ingested, following.rows_bronze) == (False, 2, 1, 1)
    assert lake.version("bronze", "crm") == data_version + 1  # only the next batch's commit
    assertDataFrameEqual(
        _keys(spark, tmp_path, "crm", "_run_id"),
        [("a.csv", 2, "1", "crashed"), ("a.csv", 3, "2", "crashed"), ("b.csv", 2, "4", "next")],
    )
    quarantined = lake.read("bronze", "quarantine").select(_base("file_path"), "line", "run_id")
    assertDataFrameEqual(quarantined, [("a.csv", 4, "crashed")])
    logged = lake.read("ops", "ingestion_log").select(_base("file_path"), "status", "batch", "rows_read", "rows_bronze", "rows_quarantined", "run_id")
    assertDataFrameEqual(
        logged,
        [
            ("a.csv", "planned", 1, None, None, None, "crashed"),
            ("a.csv", "ingested", 1, 3, 2, 1, "recovery"),
            ("b.csv", "planned", 2, None, None, None, "next"),
            ("b.csv", "ingested", 2, 1, 1, 0, "next"),
        ],
    )


def test_a_new_source_is_onboarded_by_config_only(spark, tmp_path):
    _write(
        tmp_path,
        "partners/loyalty/2026-11-01.jsonl",
        _lines(
            '{"member": "m1", "joined": "01.11.2026 09:30", "land": "PL", "tier": "gold"}',
            '{"member": "m2", "joined": "02.11.2026 10:00", "land": "Polska", "tier": "silver", "referrer": "m1"}',
            '{"member": "m3", "joined": "someday", "land": "PL"}',
        ),
    )
    entry = {
        "name": "loyalty_signups",
        "path": "partners/loyalty/*.jsonl",
        "format": "json",
        "country_column": "country",  # canonical names resolve through `columns`
        "event_time_column": "joined_at",
        "timestamp_format": "dd.MM.yyyy HH:mm",
        "timezone": "Europe/Warsaw",
        "record_key": "member",
        "columns": {"member": "loyalty_id", "joined": "joined_at", "land": "country"},
        "kind": "customer",
    }

    report = run_bronze(spark, _config(tmp_path, entry), run_id="r1", run_date=date(2026, 11, 22))

    assert report.source("loyalty_signups").rows_read == 3
    lake = _lake(spark, tmp_path)
    bronze = lake.read("bronze", "loyalty_signups")
    assert bronze.columns[:5] == ["member", "joined", "land", "tier", "referrer"]
    assertDataFrameEqual(
        bronze.select("member", "tier", "referrer", "_country", "_record_key", "ingest_date"),
        [("m1", "gold", None, "PL", "m1", date(2026, 11, 22)), ("m2", "silver", "m1", "Polska", "m2", date(2026, 11, 22))],
    )
    assertDataFrameEqual(
        lake.read("bronze", "quarantine").select("source", "line", "reason"),
        [("loyalty_signups", 3, "unparseable event timestamp")],
    )


_CRASH_SCRIPT = """
import sys
from pyspark.sql import SparkSession
from cdp_spark.config import SparkConfig, parse_config
from cdp_spark.ingest import run_bronze
from cdp_spark.session import configure_builder

landing, lakehouse = sys.argv[1], sys.argv[2]
spark = configure_builder(SparkSession.builder, SparkConfig(master="local[1]", shuffle_partitions=1)).getOrCreate()
cfg = parse_config({"paths": {"landing": landing, "lakehouse": lakehouse}, "sources": [%r]})
run_bronze(spark, cfg, run_id="killed")
"""


@pytest.mark.slow
def test_process_killed_after_the_data_commit_recovers_without_duplicates(spark, tmp_path):
    import subprocess
    import sys

    _write(tmp_path, "crm/a.csv", _crm_file(f"1,Ayse,TR,{TS}", f"2,Bob,DE,{TS}"))
    script = tmp_path / "crash.py"
    script.write_text(_CRASH_SCRIPT % CRM)
    env = {**os.environ, _faults.ENV_VAR: "bronze.after_data_commit"}

    killed = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "landing"), str(tmp_path / "lake")], env=env, capture_output=True, timeout=600
    )

    assert killed.returncode == 137, killed.stderr.decode(errors="replace")[-2000:]
    report = run_bronze(spark, _config(tmp_path, CRM), run_id="recovery").source("crm")
    assert (report.recovered, report.rows_bronze) == (True, 2)
    assertDataFrameEqual(_keys(spark, tmp_path, "crm", "_run_id"), [("a.csv", 2, "1", "killed"), ("a.csv", 3, "2", "killed")])


def test_rows_and_bad_lines_of_an_erased_subject_are_kept_out_of_bronze_and_quarantine(spark, tmp_path, monkeypatch):
    import hashlib
    import hmac
    from datetime import datetime

    from cdp_spark.privacy.suppression import SUPPRESSION_SCHEMA

    secret = "s3cret-for-this-test-0123456789abcdef"
    monkeypatch.setenv("CDP_PSEUDONYMIZATION_KEY", secret)
    erased = hmac.new(secret.encode(), b"email:ana@posteo.de", hashlib.sha256).hexdigest()
    lake = _lake(spark, tmp_path)
    lake.create("ops", "suppression", SUPPRESSION_SCHEMA)
    lake.append("ops", "suppression", spark.createDataFrame([("email", erased, "h", "erase-1", datetime(2026, 1, 1))], SUPPRESSION_SCHEMA))
    _write(
        tmp_path,
        "orders/a.jsonl",
        _lines(
            f'{{"order_id": "o1", "email": " Ana@Posteo.de", "country": "DE", "order_ts": "{TS}"}}',
            f'{{"order_id": "o2", "email": "bo@example.com", "country": "DE", "order_ts": "{TS}"}}',
            '{"order_id": "o3", "email": "ANA@posteo.DE", "country": "DE", "order_ts": ',  # truncated: unparseable
            '{"order_id": "o4", "email": "cem@example.com", "country": "DE", "order_ts": ',
        ),
    )

    report = run_bronze(spark, _config(tmp_path, ORDERS), run_id="r1").source("orders")

    assert (report.rows_read, report.rows_bronze, report.rows_quarantined, report.rows_suppressed) == (4, 1, 1, 2)
    assertDataFrameEqual(_keys(spark, tmp_path, "orders"), [("a.jsonl", 2, "o2")])
    quarantined = lake.read("bronze", "quarantine").select(_base("file_path"), "line", "raw")
    assertDataFrameEqual(quarantined, [("a.jsonl", 4, '{"order_id": "o4", "email": "cem@example.com", "country": "DE", "order_ts": ')])
    logged = lake.read("ops", "ingestion_log").where(F.col("status") == "ingested")
    assertDataFrameEqual(logged.select("rows_read", "rows_bronze", "rows_quarantined", "rows_suppressed"), [(4, 1, 1, 2)])


def test_residency_keeps_a_countrys_rows_bad_lines_and_erasures_in_its_own_lakehouse(spark, tmp_path, monkeypatch):
    import hashlib
    import hmac
    from datetime import datetime

    from cdp_spark.privacy.suppression import SUPPRESSION_SCHEMA

    secret = "s3cret-for-this-test-0123456789abcdef"
    monkeypatch.setenv("CDP_PSEUDONYMIZATION_KEY", secret)
    swiss = Lake(spark, str(tmp_path / "lake-ch"), engine="delta-rs")
    # an erasure run in the Swiss lakehouse: its suppression list must keep the subject out of intake
    erased = hmac.new(secret.encode(), b"email:lea@bluewin.ch", hashlib.sha256).hexdigest()
    swiss.append("ops", "suppression", spark.createDataFrame([("email", erased, "h", "erase-ch", datetime(2026, 1, 1))], SUPPRESSION_SCHEMA))
    orders = {**ORDERS, "name": "orders"}
    shop_ch = {**ORDERS, "name": "shop_ch", "path": "shop_ch/*.jsonl", "country_column": None, "country": "CH"}
    _write(
        tmp_path,
        "orders/a.jsonl",
        _lines(
            f'{{"order_id": "o1", "email": "ueli@gmx.ch", "country": "CH", "order_ts": "{TS}"}}',
            f'{{"order_id": "o2", "email": "jo@web.de", "country": "Deutschland", "order_ts": "{TS}"}}',
            f'{{"order_id": "o3", "email": "nora@sunrise.ch", "country": "Schweiz", "order_ts": "{TS}"}}',
            f'{{"order_id": "o4", "email": "lea@bluewin.ch", "country": "CH", "order_ts": "{TS}"}}',
        ),
    )
    _write(tmp_path, "shop_ch/a.jsonl", _lines(f'{{"order_id": "s1", "order_ts": "{TS}"}}', '{"order_id": "s2", "order_ts": '))
    cfg = parse_config(
        {
            "paths": {"landing": str(tmp_path / "landing"), "lakehouse": str(tmp_path / "lake")},
            "privacy": {"residency": {"CH": str(tmp_path / "lake-ch")}},
            "sources": [orders, shop_ch],
        },
        base_dir=tmp_path,
    )

    report = run_bronze(spark, cfg, run_id="r1")

    home = _lake(spark, tmp_path)
    assertDataFrameEqual(home.read("bronze", "orders").select("_record_key"), [("o2",)])
    assertDataFrameEqual(swiss.read("bronze", "orders").select("_record_key"), [("o1",), ("o3",)])  # "Schweiz" is CH too
    assertDataFrameEqual(swiss.read("bronze", "shop_ch").select("_record_key"), [("s1",)])
    assertDataFrameEqual(swiss.read("bronze", "quarantine").select("source", "line"), [("shop_ch", 2)])  # the raw text stays in CH
    assert not home.exists("bronze", "shop_ch") and not home.exists("bronze", "quarantine")
    assert (report.source("orders").rows_read, report.source("orders").rows_bronze, report.source("orders").rows_suppressed) == (4, 3, 1)
    logged = home.read("ops", "ingestion_log").where(F.col("status") == "ingested").select("source", "rows_read", "rows_bronze", "rows_quarantined", "rows_suppressed")
    assertDataFrameEqual(logged, [("orders", 4, 3, 0, 1), ("shop_ch", 2, 1, 1, 0)])
    assert run_bronze(spark, cfg, run_id="r2").rows_in == 0  # exactly once across lakehouses
