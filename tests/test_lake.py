"""Storage-interface suite: every engine must pass it (delta-spark is skipped without its jar)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from pyspark.testing import assertDataFrameEqual

from cdp_spark.errors import StorageError
from cdp_spark.lake import CommitResult, Lake, Txn
from cdp_spark.session import detect_capabilities

NO_DELTA_JVM = "Delta Lake JVM classes not on the classpath"
PEOPLE = "id long, country string, name string"


@pytest.fixture(params=["delta-rs", "delta-spark"])
def lake(request, spark, tmp_path: Path) -> Lake:
    if request.param == "delta-spark" and not detect_capabilities(spark).delta:
        pytest.skip(NO_DELTA_JVM)
    return Lake(spark, str(tmp_path / "lakehouse"), engine=request.param, run_id="run-1", stage="test")


def _people(spark, rows):
    return spark.createDataFrame(rows, PEOPLE)


def test_append_round_trips_every_spark_type(spark, lake: Lake) -> None:
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("n", IntegerType()),
            StructField("name", StringType()),
            StructField("score", DoubleType()),
            StructField("active", BooleanType()),
            StructField("born", DateType()),
            StructField("seen_at", TimestampType()),
            StructField("balance", DecimalType(18, 2)),
            StructField("tags", ArrayType(StringType())),
            StructField("address", StructType([StructField("city", StringType()), StructField("zip", StringType())])),
            StructField("attrs", MapType(StringType(), LongType())),
        ]
    )
    rows = [
        (1, 7, "Ana", 1.5, True, dt.date(1990, 1, 31), dt.datetime(2026, 11, 22, 10, 0, 0, 123456), Decimal("12.34"), ["a", "b"], ("Lisbon", "1000"), {"x": 1}),
        (2, None, None, None, None, None, None, None, None, None, None),
    ]
    df = spark.createDataFrame(rows, schema)

    result = lake.append("bronze", "typed", df)

    assert result == CommitResult("bronze.typed", 0, False, 2, result.files_added, 0)
    assert result.files_added >= 1
    assertDataFrameEqual(lake.read("bronze", "typed"), df)


def test_reading_a_missing_table_names_the_path_and_what_creates_it(lake: Lake) -> None:
    with pytest.raises(StorageError, match=r"silver\.nope does not exist at .*/silver/nope; it is created by"):
        lake.read("silver", "nope")


def test_create_makes_an_empty_table_and_is_a_noop_when_it_exists(spark, lake: Lake) -> None:
    schema = StructType([StructField("id", LongType()), StructField("country", StringType())])

    first = lake.create("silver", "empty", schema, partition_by=["country"])
    second = lake.create("silver", "empty", schema, partition_by=["country"])

    assert first == CommitResult("silver.empty", 0, False, 0, 0, 0)
    assert second == first
    assertDataFrameEqual(lake.read("silver", "empty"), spark.createDataFrame([], schema))
    assert lake.exists("silver", "empty") and not lake.exists("silver", "other")
    assert lake.tables("silver") == ["empty"]


def test_append_with_a_new_column_evolves_the_schema(spark, lake: Lake) -> None:
    lake.append("bronze", "people", _people(spark, [(1, "PT", "Ana")]))
    wider = spark.createDataFrame([(2, "ES", "Luis", "l@x.es")], PEOPLE + ", email string")

    lake.append("bronze", "people", wider)

    expected = spark.createDataFrame([(1, "PT", "Ana", None), (2, "ES", "Luis", "l@x.es")], PEOPLE + ", email string")
    assertDataFrameEqual(lake.read("bronze", "people"), expected)


def test_append_rejects_an_incompatible_column_type(spark, lake: Lake) -> None:
    lake.append("bronze", "people", _people(spark, [(1, "PT", "Ana")]))
    clash = spark.createDataFrame([("x", "PT", "Ana")], "id string, country string, name string")

    with pytest.raises(StorageError, match="column 'id' is bigint in the table but string in the data"):
        lake.append("bronze", "people", clash)


def test_overwrite_replaces_rows_and_schema(spark, lake: Lake) -> None:
    first = lake.append("silver", "people", _people(spark, [(1, "PT", "Ana"), (2, "ES", "Luis")]))
    replacement = spark.createDataFrame([("c-9", 3)], "customer_id string, orders int")

    result = lake.overwrite("silver", "people", replacement)

    assert (result.version, result.rows_written, result.files_removed) == (1, 1, first.files_added)
    assertDataFrameEqual(lake.read("silver", "people"), replacement)


def test_overwrite_partitions_replaces_only_the_partitions_present(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana"), (2, "ES", "Luis"), (3, "FR", "Zoé")]), partition_by=["country"])

    lake.overwrite_partitions("silver", "people", _people(spark, [(4, "PT", "Rui"), (5, "PT", "Eva"), (6, "IT", "Gia")]))

    expected = _people(spark, [(2, "ES", "Luis"), (3, "FR", "Zoé"), (4, "PT", "Rui"), (5, "PT", "Eva"), (6, "IT", "Gia")])
    assertDataFrameEqual(lake.read("silver", "people"), expected)


def test_upsert_updates_matches_and_inserts_others_on_composite_keys(spark, lake: Lake) -> None:
    lake.append(
        "silver",
        "people",
        _people(spark, [(1, "PT", "Ana"), (1, "ES", "Ana-ES"), (2, "PT", "Rui"), (None, "PT", "Nobody")]),
        partition_by=["country"],
    )
    changes = _people(spark, [(1, "ES", "Ana Maria"), (2, "FR", "Rui-FR"), (None, "PT", "Nobody-2")])

    result = lake.upsert("silver", "people", changes, keys=["id", "country"])

    expected = _people(
        spark,
        [(1, "PT", "Ana"), (1, "ES", "Ana Maria"), (2, "PT", "Rui"), (2, "FR", "Rui-FR"), (None, "PT", "Nobody"), (None, "PT", "Nobody-2")],
    )
    assertDataFrameEqual(lake.read("silver", "people"), expected)
    assert result.files_removed == 1  # only the ES file held a matching key
    assert result.rows_written == 3


def test_upsert_creates_a_missing_table(spark, lake: Lake) -> None:
    rows = _people(spark, [(1, "PT", "Ana")])

    result = lake.upsert("silver", "people", rows, keys=["id"])

    assert (result.version, result.rows_written) == (0, 1)
    assertDataFrameEqual(lake.read("silver", "people"), rows)


def test_upsert_rejects_duplicate_incoming_keys_and_leaves_the_table_unchanged(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana")]))

    with pytest.raises(StorageError, match="several incoming rows share the key"):
        lake.upsert("silver", "people", _people(spark, [(1, "PT", "A"), (1, "PT", "B")]), keys=["id"])

    assert lake.version("silver", "people") == 0
    assertDataFrameEqual(lake.read("silver", "people"), _people(spark, [(1, "PT", "Ana")]))


def test_replace_swaps_each_incoming_keys_rows_as_a_group_in_one_commit(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana"), (1, "ES", "Ana-ES"), (2, "PT", "Rui"), (3, "FR", "Zoé")]))
    before = lake.version("silver", "people")
    # key 1 had two rows and gets one; key 2 had one and gets two; key 4 is new; key 3 is untouched
    changes = _people(spark, [(1, "DE", "Ana-DE"), (2, "PT", "Rui"), (2, "BR", "Rui-BR"), (4, "IT", "Gio")])

    lake.replace("silver", "people", changes, keys=["id"], txn=Txn("test-replace", 1))
    again = lake.replace("silver", "people", changes, keys=["id"], txn=Txn("test-replace", 1))

    expected = _people(spark, [(1, "DE", "Ana-DE"), (2, "PT", "Rui"), (2, "BR", "Rui-BR"), (3, "FR", "Zoé"), (4, "IT", "Gio")])
    assertDataFrameEqual(lake.read("silver", "people"), expected)
    assert lake.version("silver", "people") == before + 1
    assert again.skipped
    assert lake.history("silver", "people", limit=1)[0]["operation"] == "replace"


def test_read_added_returns_the_rows_of_files_added_between_two_versions(spark, lake: Lake) -> None:
    lake.append("bronze", "people", _people(spark, [(1, "PT", "Ana"), (2, "PT", "Rui")]).coalesce(1))  # v0: one file
    lake.append("bronze", "people", _people(spark, [(3, "ES", "Luis")]))  # v1
    lake.append("bronze", "people", _people(spark, [(4, "FR", "Zoé")]))  # v2

    assertDataFrameEqual(lake.read_added("bronze", "people", since_version=0, version=2), _people(spark, [(3, "ES", "Luis"), (4, "FR", "Zoé")]))
    assertDataFrameEqual(lake.read_added("bronze", "people", since_version=0, version=1), _people(spark, [(3, "ES", "Luis")]))
    assert lake.read_added("bronze", "people", since_version=2, version=2).count() == 0
    assert lake.read_added("bronze", "people", since_version=None, version=2).count() == 4
    # a DELETE rewrites the file it touched: that file's surviving row counts as added once more
    lake.delete("bronze", "people", "id = 1")  # v3
    assertDataFrameEqual(lake.read_added("bronze", "people", since_version=2, version=3), _people(spark, [(2, "PT", "Rui")]))
    with pytest.raises(StorageError, match="is after version"):
        lake.read_added("bronze", "people", since_version=3, version=1)


def test_delete_removes_exactly_the_rows_matching_the_predicate(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana"), (2, "PT", "Rui"), (3, "ES", None), (4, "FR", "Zoé")]), partition_by=["country"])

    lake.delete("silver", "people", "name like 'R%' or country = 'FR'")

    # Rows where the predicate is NULL (name NULL, country ES) are kept, as in SQL DELETE.
    assertDataFrameEqual(lake.read("silver", "people"), _people(spark, [(1, "PT", "Ana"), (3, "ES", None)]))


def test_delete_with_an_invalid_predicate_raises_storage_error(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana")]))

    with pytest.raises(StorageError, match="invalid predicate"):
        lake.delete("silver", "people", "no_such_column = 1")


def test_time_travel_by_version_and_by_timestamp(spark, lake: Lake) -> None:
    v0 = _people(spark, [(1, "PT", "Ana")])
    lake.append("gold", "people", v0)
    lake.append("gold", "people", _people(spark, [(2, "ES", "Luis")]))
    first_commit_at = lake.history("gold", "people")[-1]["timestamp"]

    assertDataFrameEqual(lake.read("gold", "people", version=0), v0)
    assertDataFrameEqual(lake.read("gold", "people", timestamp=first_commit_at), v0)
    assertDataFrameEqual(lake.read("gold", "people", timestamp=first_commit_at.isoformat()), v0)
    assert lake.read("gold", "people").count() == 2
    with pytest.raises(StorageError, match="has no version 7"):
        lake.read("gold", "people", version=7)


def test_history_records_operation_run_id_and_stage_of_each_commit(spark, lake: Lake) -> None:
    lake.append("ops", "runs", _people(spark, [(1, "PT", "Ana")]))
    lake.with_context(run_id="run-2", stage="silver").upsert("ops", "runs", _people(spark, [(1, "PT", "Eva")]), keys=["id"])

    history = [{k: h[k] for k in ("version", "operation", "run_id", "stage")} for h in lake.history("ops", "runs")]

    assert history == [
        {"version": 1, "operation": "upsert", "run_id": "run-2", "stage": "silver"},
        {"version": 0, "operation": "append", "run_id": "run-1", "stage": "test"},
    ]
    assert lake.history("ops", "runs", limit=1)[0]["version"] == 1


def test_rerunning_the_same_txn_commits_once(spark, lake: Lake) -> None:
    rows = _people(spark, [(1, "PT", "Ana")])

    first = lake.append("bronze", "people", rows, txn=Txn("ingest-crm", 20261122))
    rerun = lake.append("bronze", "people", rows, txn=Txn("ingest-crm", 20261122))
    older = lake.delete("bronze", "people", "id = 1", txn=Txn("ingest-crm", 20261121))

    assert (first.version, first.skipped) == (0, False)
    assert rerun == CommitResult("bronze.people", 0, True, None, 0, 0)
    assert older.skipped
    assert lake.txn_version("bronze", "people", "ingest-crm") == 20261122
    assert lake.txn_version("bronze", "people", "other-app") is None
    assert [h["version"] for h in lake.history("bronze", "people")] == [0]
    assertDataFrameEqual(lake.read("bronze", "people"), rows)


def test_vacuum_deletes_unreferenced_files_and_keeps_the_current_rows(spark, lake: Lake) -> None:
    lake.append("silver", "people", _people(spark, [(1, "PT", "Ana")]))
    lake.overwrite("silver", "people", _people(spark, [(2, "ES", "Luis")]))

    deleted = lake.vacuum("silver", "people", retention_hours=0)

    assert len(deleted) == 1 and deleted[0].endswith(".parquet")
    assertDataFrameEqual(lake.read("silver", "people"), _people(spark, [(2, "ES", "Luis")]))
    assert lake.vacuum("silver", "people", retention_hours=0) == []


# ---------------------------------------------------------------------- delta-rs engine specifics
@pytest.fixture
def rs_lake(spark, tmp_path: Path) -> Lake:
    return Lake(spark, str(tmp_path / "lakehouse"), engine="delta-rs", run_id="run-1", stage="test")


def _parquet_files(table_dir: str) -> set[str]:
    root = Path(table_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if not str(p.relative_to(root)).startswith("_")}


def test_a_conflicting_concurrent_commit_raises_storage_error_and_leaves_no_files(spark, rs_lake: Lake, monkeypatch) -> None:
    from deltalake import DeltaTable

    from cdp_spark.lake import _delta_rs

    rs_lake.append("silver", "people", _people(spark, [(1, "PT", "Ana"), (2, "PT", "Rui")]).coalesce(1))
    other_writer = rs_lake.with_context(run_id="run-other")
    original_stage = _delta_rs.DeltaRsEngine._stage
    interfered = []

    def stage_then_interfere(self, *args, **kwargs):
        staged = original_stage(self, *args, **kwargs)
        if not interfered:  # between the upsert's snapshot and its commit, another writer rewrites the file
            interfered.append(True)
            other_writer.delete("silver", "people", "id = 1")
        return staged

    monkeypatch.setattr(_delta_rs.DeltaRsEngine, "_stage", stage_then_interfere)

    with pytest.raises(StorageError, match=r"(?s)conflicts with a concurrent commit.*nothing was committed"):
        rs_lake.upsert("silver", "people", _people(spark, [(1, "PT", "Eva")]), keys=["id"])

    monkeypatch.undo()
    assertDataFrameEqual(rs_lake.read("silver", "people"), _people(spark, [(2, "PT", "Rui")]))
    path = rs_lake.path("silver", "people")
    referenced = {p for v in (0, 1) for p in _add_paths(DeltaTable(path, version=v))}
    assert _parquet_files(path) == referenced


def _add_paths(table) -> set[str]:
    from urllib.parse import unquote

    import pyarrow as pa

    return {unquote(p) for p in pa.table(table.get_add_actions()).column("path").to_pylist()}


def test_crash_leftovers_are_invisible_and_cleaned_up(spark, rs_lake: Lake) -> None:
    rows = _people(spark, [(1, "PT", "Ana")])
    rs_lake.append("bronze", "people", rows)
    table = Path(rs_lake.path("bronze", "people"))
    stray = table / "part-never-committed.parquet"  # moved into place, then the driver died before committing
    stray.write_bytes((table / sorted(_parquet_files(str(table)))[0]).read_bytes())
    old_staging = table / "_staging" / "1000000000000-crashed"
    fresh_staging = table / "_staging" / f"{int(dt.datetime.now().timestamp() * 1000)}-in-flight"
    for d in (old_staging, fresh_staging):
        d.mkdir(parents=True)
        (d / "part-0.parquet").write_bytes(b"partial")

    assertDataFrameEqual(rs_lake.read("bronze", "people"), rows)
    rs_lake.append("bronze", "people", _people(spark, [(2, "ES", "Luis")]))

    assert not old_staging.exists() and fresh_staging.exists()
    assert rs_lake.vacuum("bronze", "people", retention_hours=0) == ["part-never-committed.parquet"]
    assertDataFrameEqual(rs_lake.read("bronze", "people"), _people(spark, [(1, "PT", "Ana"), (2, "ES", "Luis")]))


def test_changing_the_partitioning_of_an_existing_table_is_refused(spark, rs_lake: Lake) -> None:
    rs_lake.append("silver", "people", _people(spark, [(1, "PT", "Ana")]), partition_by=["country"])

    with pytest.raises(StorageError, match=r"partitioned by \['country'\]"):
        rs_lake.overwrite("silver", "people", _people(spark, [(1, "PT", "Ana")]), partition_by=["id"])
