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


# --------------------------------------------------------------------------- exports on inline frames

CONSENTS_DDL = "subject_type string, subject_key string, purpose string, granted boolean, valid_from timestamp, is_current boolean"


def _export_inputs(spark, contacts, identifiers, consents):
    """(profile with consent columns, contact rows) from inline pii_contacts/identifiers/consents rows;
    ``contacts``: (uid, record_id, email, phone); ``identifiers``: (record_id, id_type, id_key, seen_at)."""
    from cdp_spark.activation import contact_rows
    from cdp_spark.profiles.consent import consent_state, customer_subjects

    uid_of = {record: uid for uid, record, _, _ in contacts}
    identity_map = spark.createDataFrame([("crm", r, u) for r, u in uid_of.items()], "source string, record_id string, customer_uid string")
    pii = spark.createDataFrame([("crm", r, "DE", e, p) for _, r, e, p in contacts],
                                "source string, record_id string, country string, email_norm string, phone_e164 string")
    ids = spark.createDataFrame([("crm", r, t, k, s) for r, t, k, s in identifiers],
                                "source string, record_id string, id_type string, id_key string, seen_at timestamp")
    consent_rows = spark.createDataFrame(consents, CONSENTS_DDL)
    profile = consent_state(consent_rows, customer_subjects(ids, identity_map))
    return profile, contact_rows(pii, ids, identity_map, consent_rows)


def _members(spark, uids, segment="s"):
    return spark.createDataFrame([(u, segment) for u in uids], "customer_uid string, segment string")


def _read_json_export(spark, directory: Path, ddl: str):
    return spark.read.schema(ddl).json(str(directory / "part-*"))


def test_a_revoked_email_is_never_exported_even_when_a_later_grant_on_another_subject_allows_the_customer(spark, tmp_path):
    from cdp_spark.activation import run_exports
    from cdp_spark.config import ExportConfig

    # X: e1 (seen last) is revoked for marketing, e2 is granted later → allowed, but only e2 may leave.
    # Y: its only email is revoked; a later grant on its customer id makes it allowed → no email hash.
    profile, contacts = _export_inputs(
        spark,
        contacts=[("X", "x1", "e1@example.com", None), ("X", "x2", "e2@example.com", None), ("Y", "y1", "y@example.com", "+905321234567")],
        identifiers=[
            ("x1", "email", "k_e1", D(2024, 5, 1)),
            ("x2", "email", "k_e2", D(2024, 1, 1)),
            ("y1", "email", "k_y", D(2024, 1, 1)),
            ("y1", "customer_id", "k_cy", D(2024, 1, 1)),
        ],
        consents=[
            ("email", "k_e1", "marketing_email", True, D(2024, 1, 1), False),
            ("email", "k_e1", "marketing_email", False, D(2024, 2, 1), True),
            ("email", "k_e2", "marketing_email", True, D(2024, 3, 1), True),
            ("email", "k_y", "marketing_email", False, D(2024, 2, 1), True),
            ("customer_id", "k_cy", "marketing_email", True, D(2024, 3, 1), True),
            ("email", "k_e1", "ads", True, D(2024, 1, 1), True),  # e1 is revoked for marketing only
        ],
    )
    exports = [
        ExportConfig(name="news", segments=("s",), fields=("email_sha256", "phone_sha256"), format="json", purpose="marketing_email"),
        ExportConfig(name="ads", segments=("s",), fields=("email_sha256",), format="json", purpose="ads"),
    ]
    run_exports(profile, _members(spark, ["X", "Y"]), contacts, None, exports, root=str(tmp_path), run_id="r1", at=D(2024, 7, 1))

    ddl = "customer_uid string, email_sha256 string, phone_sha256 string"
    assertDataFrameEqual(
        _read_json_export(spark, tmp_path / "news" / "r1", ddl),
        spark.createDataFrame([("X", sha("e2@example.com"), None), ("Y", None, sha("+905321234567"))], ddl),
    )
    assertDataFrameEqual(  # per purpose: for ads, X's latest email e1 is fine (and Y has no ads consent)
        _read_json_export(spark, tmp_path / "ads" / "r1", "customer_uid string, email_sha256 string"),
        spark.createDataFrame([("X", sha("e1@example.com"))], "customer_uid string, email_sha256 string"),
    )


@pytest.mark.parametrize(
    ("hashing", "emails", "phone"),
    [
        ("google", {"G": "johndoe@googlemail.com", "M": "anna.lena@example.com", "T": "mehmet.oz@gmail.com.tr"}, "+4915112345678"),
        ("meta", {"G": "john.doe@googlemail.com", "M": "anna.lena@example.com", "T": "mehmet.oz@gmail.com.tr"}, "4915112345678"),
    ],
)
def test_identifiers_are_normalized_the_way_each_platform_hashes_them(spark, hashing, emails, phone):
    from cdp_spark.activation import hashed_contacts

    _, contacts = _export_inputs(
        spark,
        contacts=[
            ("G", "g1", "  John.Doe@GoogleMail.COM ", " +49 151 12345678"),
            ("M", "m1", "\tAnna.Lena@Example.com  ", None),
            ("T", "t1", "Mehmet.Oz@Gmail.com.tr", None),  # not a Google mailbox: periods stay
        ],
        identifiers=[("g1", "email", "k_g", D(2024, 1, 1)), ("m1", "email", "k_m", D(2024, 1, 1)), ("t1", "email", "k_t", D(2024, 1, 1))],
        consents=[("email", "k_g", "ads", True, D(2024, 1, 1), True)],
    )
    got = hashed_contacts(contacts, purpose="ads", hashing=hashing)
    expected = [
        ("G", hashlib.sha256(emails["G"].encode()).hexdigest(), hashlib.sha256(phone.encode()).hexdigest()),
        ("M", hashlib.sha256(emails["M"].encode()).hexdigest(), None),
        ("T", hashlib.sha256(emails["T"].encode()).hexdigest(), None),
    ]
    assertDataFrameEqual(got, got.sparkSession.createDataFrame(expected, "customer_uid string, email_sha256 string, phone_sha256 string"))


def test_a_gmail_address_is_hashed_as_given_for_meta_and_without_its_periods_for_google(spark):
    """silver's identity form (email_norm) drops Gmail's periods and +tag; the address as given
    (email_address) keeps them, and each platform's rule is applied to that."""
    from cdp_spark.activation import contact_rows, hashed_contacts

    pii = spark.createDataFrame([("crm", "r1", "DE", "johndoe@gmail.com", "john.doe+news@gmail.com", None)],
                                "source string, record_id string, country string, email_norm string, email_address string, phone_e164 string")
    ids = spark.createDataFrame([("crm", "r1", "email", "k1", D(2024, 1, 1))], "source string, record_id string, id_type string, id_key string, seen_at timestamp")
    imap = spark.createDataFrame([("crm", "r1", "cu_1")], "source string, record_id string, customer_uid string")
    contacts = contact_rows(pii, ids, imap, spark.createDataFrame([], CONSENTS_DDL))
    sha = {e: hashlib.sha256(e.encode()).hexdigest() for e in ("johndoe+news@gmail.com", "john.doe+news@gmail.com")}
    ddl = "customer_uid string, email_sha256 string, phone_sha256 string"
    assertDataFrameEqual(hashed_contacts(contacts, purpose="ads", hashing="google"), spark.createDataFrame([("cu_1", sha["johndoe+news@gmail.com"], None)], ddl))
    assertDataFrameEqual(hashed_contacts(contacts, purpose="ads", hashing="meta"), spark.createDataFrame([("cu_1", sha["john.doe+news@gmail.com"], None)], ddl))


def test_identifier_hashing_defaults_to_google_and_unknown_platforms_are_refused():
    from cdp_spark.config import ExportConfig
    from cdp_spark.errors import ConfigError

    assert ExportConfig(name="x", segments=("s",), fields=("email_sha256",)).identifier_hashing == "google"
    bad = {"name": "tt", "segments": ["buyers"], "fields": ["email_sha256"], "identifier_hashing": "tiktok"}
    with pytest.raises(ConfigError, match=r"gold\.exports\.0\.identifier_hashing: .*'google' or 'meta' \(got 'tiktok'\)"):
        parse_config({"gold": {"segments": GOLD["segments"], "exports": [bad]}})


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def exported_once(spark, tmp_path):
    """An incremental destination exported in r0 (A, Z) and r1 (A, B; Z removed), r1 delivered:
    (run, root, states before and after r1, r1's results)."""
    from cdp_spark.activation import run_exports
    from cdp_spark.config import ExportConfig

    profile, contacts = _export_inputs(
        spark,
        contacts=[(u, f"{u.lower()}1", f"{u.lower()}@example.com", None) for u in "ABZ"],
        identifiers=[(f"{u.lower()}1", "email", f"k_{u}", D(2024, 1, 1)) for u in "ABZ"],
        consents=[("email", f"k_{u}", "marketing_email", True, D(2024, 1, 1), True) for u in "ABZ"],
    )
    dest = ExportConfig(name="news", segments=("s",), fields=("email_sha256",), format="csv", mode="incremental")

    def run(members, state, run_id, at):
        return run_exports(profile, _members(spark, members), contacts, state, [dest], root=str(tmp_path), run_id=run_id, at=at)

    _, state0 = run(["A", "Z"], None, "r0", D(2024, 7, 1))
    state0 = state0.localCheckpoint()
    results1, state1 = run(["A", "B"], state0, "r1", D(2024, 7, 2))
    state1 = state1.localCheckpoint()
    (tmp_path / "news" / "r1" / "_DELIVERED").write_text("2024-07-02T08:00:00Z\n")
    return run, tmp_path / "news" / "r1", state0, state1, results1


def test_rerunning_an_export_run_keeps_its_files_manifest_delivery_marker_and_state(exported_once):
    run, directory, _, state1, results1 = exported_once
    before = _files(directory)
    assert [r["action"] for r in _csv_rows(str(directory))] == ["add", "remove"]  # B added, Z removed

    results, state = run(["A", "B"], state1, "r1", D(2024, 7, 3))  # a rerun, later, with the state r1 left

    assert _files(directory) == before
    assert results == results1
    assertDataFrameEqual(state, state1)


def test_rerun_after_a_crash_between_the_files_and_the_state_rebuilds_the_state_without_rewriting(exported_once):
    run, directory, state0, state1, results1 = exported_once
    before = _files(directory)

    results, state = run(["A", "B"], state0, "r1", D(2024, 7, 2))  # r1's files exist, its state was never written

    assert _files(directory) == before
    assert results == results1
    assertDataFrameEqual(state, state1)
