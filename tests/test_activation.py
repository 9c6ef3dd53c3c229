"""Gold end to end (two runs over a small lake): consent-aware exports, incremental deltas, manifests,
segment history through the stage, and a bad segment failing before any write."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import load_config, parse_config
from cdp_spark.lake import Lake
from cdp_spark.profiles.stage import run_gold
from cdp_spark.segments import SegmentError, segment_frame, validate_segments

ROOT = Path(__file__).resolve().parents[1]
D = datetime
EMAILS = {"A": "anna@example.com", "B": "bora@example.com", "C": "carl@example.com", "D": "dora@example.com", "E": "emil@example.com"}
PHONES = {"A": "+4915112345678"}
GOLD = {
    "segments": [{"name": "buyers", "condition": "orders >= 1"}],
    "exports": [
        {"name": "email_list", "segments": ["buyers"], "fields": ["email_sha256", "country", "segments"], "format": "csv",
         "purpose": "marketing_email", "mode": "incremental"},
        {"name": "ads_full", "segments": ["buyers"], "fields": ["email_sha256", "phone_sha256"], "format": "json", "purpose": "ads"},
    ],
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _orders(spark, with_e: bool):
    rows = [
        ("shop", "oA", "DE", D(2024, 6, 1), "ecommerce", "completed", 120.0),
        ("shop", "oB", "TR", D(2024, 6, 2), "ecommerce", "completed", 80.0),
        ("shop", "oC", "DE", D(2024, 6, 3), "ecommerce", "completed", 60.0),
        ("shop", "oD", "DE", D(2024, 6, 4), "ecommerce", "completed", 40.0),
    ] + ([("shop", "oE", "AT", D(2024, 7, 1, 10), "ecommerce", "completed", 20.0)] if with_e else [])
    return spark.createDataFrame(
        rows, "source string, record_id string, country string, order_ts timestamp, channel string, status string, amount_reporting double"
    )


def _consents(spark, d_revoked: bool):
    # (subject key, purpose, granted, valid_from, is_current)
    rows = [
        ("k_A", "marketing_email", True, D(2024, 1, 1), True),
        ("k_A", "ads", True, D(2024, 1, 1), True),
        ("k_B", "marketing_email", True, D(2024, 1, 1), False),
        ("k_B", "marketing_email", False, D(2024, 3, 1), True),  # B revoked: never exported for marketing
        ("k_B", "ads", True, D(2024, 1, 1), True),
        ("k_D", "marketing_email", True, D(2024, 1, 1), not d_revoked),
        ("k_E", "marketing_email", True, D(2024, 1, 1), True),
        # C: no consent record at all → not allowed
    ] + ([("k_D", "marketing_email", False, D(2024, 7, 1, 12), True)] if d_revoked else [])
    return spark.createDataFrame(
        [("email", k, p, g, t, cur) for k, p, g, t, cur in rows],
        "subject_type string, subject_key string, purpose string, granted boolean, valid_from timestamp, is_current boolean",
    )


def _write_silver(spark, lake: Lake) -> None:
    uids = list(EMAILS)
    lake.overwrite("silver", "customer_records", spark.createDataFrame(
        [("crm", f"c{u}", "DE", u.lower(), None, None, None, None, None, D(2024, 1, 1)) for u in uids],
        "source string, record_id string, country string, first_name string, last_name string, date_of_birth date, gender string, "
        "city string, postcode string, updated_at timestamp",
    ))
    lake.overwrite("silver", "identifiers", spark.createDataFrame(
        [("crm", f"c{u}", "email", f"k_{u}", D(2024, 1, 1)) for u in uids],
        "source string, record_id string, id_type string, id_key string, seen_at timestamp",
    ))
    lake.overwrite("silver", "pii_contacts", spark.createDataFrame(
        [("crm", f"c{u}", "DE", EMAILS[u], PHONES.get(u)) for u in uids],
        "source string, record_id string, country string, email_norm string, phone_e164 string",
    ))
    lake.overwrite("silver", "interactions", spark.createDataFrame(
        [("web", "w1", "DE", D(2024, 6, 10), "web_event", "page_view", "web", None)],
        "source string, record_id string, country string, event_ts timestamp, kind string, event_type string, channel string, platform string",
    ))
    lake.overwrite("gold", "identity_map", spark.createDataFrame(
        [("crm", f"c{u}", u) for u in uids] + [("shop", f"o{u}", u) for u in uids] + [("web", "w1", "A")],
        "source string, record_id string, customer_uid string",
    ))
    lake.overwrite("silver", "orders", _orders(spark, with_e=False))
    lake.overwrite("silver", "consents", _consents(spark, d_revoked=False))


@pytest.fixture(scope="module")
def two_runs(spark, tmp_path_factory):
    """Run 1 on 2024-07-01; then E buys and D revokes marketing consent; run 2 on 2024-07-02."""
    base = tmp_path_factory.mktemp("gold")
    cfg = parse_config({"paths": {"lakehouse": "lake", "exports": "exports"}, "engines": {"storage": "delta-rs"}, "gold": GOLD}, base_dir=base)
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    _write_silver(spark, lake)
    first = run_gold(spark, cfg, run_id="r1", run_date=date(2024, 7, 1))
    lake.overwrite("silver", "orders", _orders(spark, with_e=True))
    lake.overwrite("silver", "consents", _consents(spark, d_revoked=True))
    second = run_gold(spark, cfg, run_id="r2", run_date=date(2024, 7, 2))
    return cfg, lake, first, second


def _csv_rows(directory: str) -> list[dict[str, str]]:
    files = sorted(Path(directory).glob("part-*"))
    rows = []
    for f in files:
        with f.open(newline="") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def test_reports_name_segment_sizes_and_export_paths(two_runs):
    cfg, _, first, second = two_runs
    assert first.as_dict()["segment_sizes"] == {"buyers": 4}
    assert second.as_dict()["segment_sizes"] == {"buyers": 5}
    assert second.as_dict()["segment_changes"] == {"buyers": {"entered": 1}}
    assert second.as_dict()["exports"] == {
        "email_list": f"{cfg.paths.exports}/email_list/r2",
        "ads_full": f"{cfg.paths.exports}/ads_full/r2",
    }
    assert (first.rows_out, second.rows_out) == (5, 5)


def test_incremental_export_has_everyone_first_then_only_added_and_removed(two_runs):
    cfg, _, _, _ = two_runs
    run1 = _csv_rows(f"{cfg.paths.exports}/email_list/r1")
    run2 = _csv_rows(f"{cfg.paths.exports}/email_list/r2")
    assert run1 == [
        {"customer_uid": "A", "email_sha256": sha(EMAILS["A"]), "country": "DE", "segments": '["buyers"]', "action": "add"},
        {"customer_uid": "D", "email_sha256": sha(EMAILS["D"]), "country": "DE", "segments": '["buyers"]', "action": "add"},
    ]
    assert run2 == [
        {"customer_uid": "E", "email_sha256": sha(EMAILS["E"]), "country": "AT", "segments": '["buyers"]', "action": "add"},
        {"customer_uid": "D", "email_sha256": sha(EMAILS["D"]), "country": "DE", "segments": '["buyers"]', "action": "remove"},
    ]


def test_customer_who_revoked_marketing_consent_never_appears_in_a_marketing_export(two_runs):
    cfg, lake, _, _ = two_runs
    exported = [r["customer_uid"] for run in ("r1", "r2") for r in _csv_rows(f"{cfg.paths.exports}/email_list/{run}") if r["action"] == "add"]
    assert "B" not in exported and "C" not in exported  # B revoked, C never consented
    state = lake.read("gold", "export_state").where(F.col("destination") == "email_list").select("customer_uid")
    assertDataFrameEqual(state, lake.read("gold", "identity_map").sparkSession.createDataFrame([("A",), ("E",)], "customer_uid string"))


def test_full_export_holds_the_current_consenting_members_with_hashed_identifiers(two_runs):
    cfg, _, _, _ = two_runs
    lines = [json.loads(line) for f in sorted(Path(f"{cfg.paths.exports}/ads_full/r2").glob("part-*")) for line in f.read_text().splitlines()]
    assert lines == [
        {"customer_uid": "A", "email_sha256": sha(EMAILS["A"]), "phone_sha256": sha(PHONES["A"])},
        {"customer_uid": "B", "email_sha256": sha(EMAILS["B"])},
    ]


def test_manifest_checksums_and_counts_match_the_files(two_runs):
    cfg, _, _, _ = two_runs
    for destination, run in (("email_list", "r1"), ("email_list", "r2"), ("ads_full", "r2")):
        directory = Path(f"{cfg.paths.exports}/{destination}/{run}")
        manifest = json.loads((directory / "manifest.json").read_text())
        on_disk = sorted(p.name for p in directory.glob("part-*"))
        assert [f["name"] for f in manifest["files"]] == on_disk
        for f in manifest["files"]:
            data = (directory / f["name"]).read_bytes()
            assert (f["sha256"], f["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
        assert (manifest["destination"], manifest["run_id"]) == (destination, run)
    incremental = json.loads(Path(f"{cfg.paths.exports}/email_list/r2/manifest.json").read_text())
    assert (incremental["mode"], incremental["rows"], incremental["added"], incremental["removed"]) == ("incremental", 2, 1, 1)


def test_no_raw_email_or_phone_in_any_export_or_gold_table(two_runs):
    cfg, lake, _, _ = two_runs
    raw = [v.encode() for v in (*EMAILS.values(), *PHONES.values())]
    for f in Path(cfg.paths.exports).rglob("*"):
        if f.is_file():
            assert not any(v in f.read_bytes() for v in raw), f
    for table in ("customer_profile", "customer_features", "segment_membership", "export_state"):
        text = " ".join(str(r) for r in lake.read("gold", table).collect())
        assert not any(v.decode() in text for v in raw), table


def test_segment_history_through_the_stage(two_runs):
    _, lake, _, _ = two_runs
    got = lake.read("gold", "segment_membership").select("customer_uid", "segment", "entered_run_id", "exited_run_id", "exited_at")
    expected = got.sparkSession.createDataFrame(
        [(u, "buyers", "r1", None, None) for u in "ABCD"] + [("E", "buyers", "r2", None, None)],
        "customer_uid string, segment string, entered_run_id string, exited_run_id string, exited_at timestamp",
    )
    assertDataFrameEqual(got, expected)


def test_bad_segment_fails_the_run_before_anything_is_written(spark, two_runs):
    cfg, lake, _, _ = two_runs
    bad = dict(GOLD, segments=[*GOLD["segments"], {"name": "vip", "condition": "lifetime_value > 100"}])
    bad_cfg = cfg.model_copy(update={"gold": parse_config({"gold": bad}).gold})
    tables = ("customer_profile", "customer_features", "segment_membership", "export_state")
    before = {t: lake.version("gold", t) for t in tables}
    with pytest.raises(SegmentError, match=r"gold.segments\['vip'\]: condition 'lifetime_value > 100' cannot be resolved: .*lifetime_value"):
        run_gold(spark, bad_cfg, run_id="r3", run_date=date(2024, 7, 3))
    assert {t: lake.version("gold", t) for t in tables} == before
    assert not Path(f"{cfg.paths.exports}/email_list/r3").exists()


def test_shipped_example_segments_and_exports_are_valid(two_runs):
    _, lake, _, _ = two_runs
    from cdp_spark.activation import check_export

    shipped = load_config(ROOT / "conf" / "local.yaml").gold
    profile = lake.read("gold", "customer_profile")
    validate_segments(segment_frame(profile, lake.read("gold", "customer_features")), shipped.segments)
    for dest in shipped.exports:
        check_export(dest, profile_columns=profile.columns, segments=[s.name for s in shipped.segments])


@pytest.mark.parametrize(("fields", "problem"), [(["email"], "raw contact field"), (["lifetime_value"], "unknown field"), (["phone_e164"], "raw contact field")])
def test_export_definition_with_raw_or_unknown_fields_is_refused(fields, problem):
    from cdp_spark.activation import check_export
    from cdp_spark.config import ExportConfig
    from cdp_spark.errors import ConfigError

    dest = ExportConfig(name="crm_sync", segments=["buyers"], fields=fields)
    with pytest.raises(ConfigError, match=rf"gold.exports\['crm_sync'\]: {problem}"):
        check_export(dest, profile_columns=["customer_uid", "country"], segments=["buyers"])
