"""Protocol conformance: what the Lake writes is a Delta table any reader understands, and back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.testing import assertDataFrameEqual

from cdp_spark.lake import Lake, Txn

PEOPLE = "id long, country string, name string, born date, seen_at timestamp, balance decimal(10,2)"


@pytest.fixture
def lake(spark, tmp_path: Path) -> Lake:
    return Lake(spark, str(tmp_path / "lakehouse"), engine="delta-rs", run_id="run-7", stage="conformance")


def _rows(table: DeltaTable) -> list[dict]:
    return sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: (r["id"], r["country"] or ""))


def _person(i: int, country: str | None, name: str) -> tuple:
    return (i, country, name, dt.date(1990, 1, i), dt.datetime(2026, 11, 22, 10, i), Decimal(f"{i}.50"))


def _as_dict(row: tuple) -> dict:
    keys = ["id", "country", "name", "born", "seen_at", "balance"]
    out = dict(zip(keys, row))
    out["seen_at"] = out["seen_at"].replace(tzinfo=dt.timezone.utc)  # Delta timestamps are UTC-adjusted
    return out


def test_a_partitioned_table_reads_back_with_plain_deltalake(spark, lake: Lake) -> None:
    rows = [_person(1, "PT", "Ana"), _person(2, "ES", "Luis"), _person(3, None, "Zoé")]
    lake.append("silver", "people", spark.createDataFrame(rows, PEOPLE), partition_by=["country"], txn=Txn("load", 3))

    table = DeltaTable(lake.path("silver", "people"))

    assert _rows(table) == sorted([_as_dict(r) for r in rows], key=lambda r: (r["id"], r["country"] or ""))
    assert table.metadata().partition_columns == ["country"]
    assert table.transaction_version("load") == 3
    assert table.history(1)[0]["userMetadata"] == '{"cdp.operation": "append", "cdp.runId": "run-7", "cdp.stage": "conformance"}'


def test_upsert_and_delete_results_read_back_with_plain_deltalake(spark, lake: Lake) -> None:
    df = spark.createDataFrame([_person(1, "PT", "Ana"), _person(2, "ES", "Luis"), _person(3, "PT", "Rui")], PEOPLE)
    lake.append("silver", "people", df, partition_by=["country"])
    lake.upsert("silver", "people", spark.createDataFrame([_person(2, "ES", "Luis Miguel"), _person(4, "FR", "Zoé")], PEOPLE), keys=["id"])
    lake.delete("silver", "people", "name = 'Rui'")

    table = DeltaTable(lake.path("silver", "people"))

    expected = [_person(1, "PT", "Ana"), _person(2, "ES", "Luis Miguel"), _person(4, "FR", "Zoé")]
    assert _rows(table) == [_as_dict(r) for r in expected]
    assert table.version() == 2
    assert _rows(DeltaTable(lake.path("silver", "people"), version=0)) == [_as_dict(r) for r in sorted(df.collect(), key=lambda r: r.id)]


def test_a_table_written_by_delta_rs_itself_is_read_and_upserted_by_the_lake(spark, lake: Lake) -> None:
    path = lake.path("bronze", "external")
    arrow = pa.table(
        {"id": pa.array([1, 2], pa.int64()), "country": ["PT", "ES"], "name": ["Ana", "Luis"]}
    )
    write_deltalake(path, arrow, partition_by=["country"])

    lake.upsert("bronze", "external", spark.createDataFrame([(2, "ES", "Luis M"), (3, "PT", "Rui")], "id long, country string, name string"), keys=["id"])

    expected = spark.createDataFrame([(1, "PT", "Ana"), (2, "ES", "Luis M"), (3, "PT", "Rui")], "id long, country string, name string")
    assertDataFrameEqual(lake.read("bronze", "external"), expected)
    assert sorted(DeltaTable(path).to_pyarrow_table().to_pylist(), key=lambda r: r["id"]) == [r.asDict() for r in expected.orderBy("id").collect()]
