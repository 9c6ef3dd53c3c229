"""Environmental faults: full disk, read-only or missing paths, corrupt files and logs, hostile input.

Each fault must give an error that says what and where, and leave no partial commit behind.
Faults the OS cannot be asked for here are injected at the call that would hit them (see
docs/reliability.md): the tests run as root, where chmod does not stop writes, so the read-only
lakehouse is a read-only bind mount in a private mount namespace (``unshare -m``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import parse_config
from cdp_spark.errors import StorageError
from cdp_spark.ingest import _reasons as R
from cdp_spark.lake import Lake
from cdp_spark.lake._files import FileStore
from cdp_spark.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
TS = "2026-03-01T10:15:00+01:00"
CRM = {
    "name": "crm", "path": "crm/*.csv", "format": "csv", "options": {"header": "true"}, "country_column": "country",
    "event_time_column": "updated_at", "record_key": "customer_id", "kind": "customer",
}
EVENTS = {
    "name": "events", "path": "events/*.jsonl", "format": "json", "country": "DE", "event_time_column": "ts",
    "record_key": "event_id", "kind": "web_event", "max_record_bytes": 100_000,
}
POS = {
    "name": "pos", "path": "pos/*.parquet", "format": "parquet", "country": "DE", "event_time_column": "txn_ts",
    "record_key": "transaction_id", "kind": "pos",
}


def _config(tmp_path: Path, *sources: dict, landing: Path | None = None, lakehouse: Path | None = None):
    paths = {"landing": str(landing or tmp_path / "landing"), "lakehouse": str(lakehouse or tmp_path / "lake")}
    return parse_config({"paths": paths, "sources": list(sources)}, base_dir=tmp_path)


def _write(tmp_path: Path, rel: str, content: bytes) -> Path:
    path = tmp_path / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _crm(*rows: str) -> bytes:
    return ("customer_id,name,country,updated_at\n" + "".join(r + "\n" for r in rows)).encode()


def _lake(spark, root: Path) -> Lake:
    return Lake(spark, str(root), engine="delta-rs", run_id="t", stage="test")


def _files_under(path: Path) -> dict[str, int]:
    """Every file under ``path`` with its size (the on-disk state a failed write must not change)."""
    return {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def _versions(lake: Lake, layer: str) -> dict[str, int | None]:
    return {name: lake.version(layer, name) for name in lake.tables(layer)}


def _basename(col: str):
    return F.regexp_extract(F.col(col), r"([^/]+)$", 1)


# --------------------------------------------------------------------------- disk full
def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_committing_raises_storage_error_and_commits_nothing(spark, tmp_path, monkeypatch):
    lake = _lake(spark, tmp_path / "lake")
    lake.append("silver", "orders", spark.createDataFrame([(1, "a")], "id long, v string"))
    before = _files_under(tmp_path / "lake")
    monkeypatch.setattr("deltalake.DeltaTable.create_write_transaction", _no_space)

    with pytest.raises(StorageError, match=r"append on silver\.orders .*No space left on device.*nothing was committed"):
        lake.append("silver", "orders", spark.createDataFrame([(2, "b")], "id long, v string"))

    assert _files_under(tmp_path / "lake") == before  # the written data files were deleted again
    assertDataFrameEqual(lake.read("silver", "orders"), [(1, "a")])


def test_disk_full_while_placing_data_files_commits_nothing(spark, tmp_path, monkeypatch):
    lake = _lake(spark, tmp_path / "lake")
    lake.append("silver", "orders", spark.createDataFrame([(1, "a")], "id long, v string"))
    version = lake.version("silver", "orders")
    monkeypatch.setattr(FileStore, "move_all", _no_space)

    with pytest.raises(StorageError, match="No space left on device"):
        lake.append("silver", "orders", spark.createDataFrame([(2, "b"), (3, "c")], "id long, v string").repartition(2))

    assert lake.version("silver", "orders") == version
    assertDataFrameEqual(lake.read("silver", "orders"), [(1, "a")])
    assert list((tmp_path / "lake" / "silver" / "orders" / "_staging").iterdir()) == []  # staging cleaned up


def test_disk_full_while_placing_data_files_names_the_table(spark, tmp_path, monkeypatch):
    lake = _lake(spark, tmp_path / "lake")
    monkeypatch.setattr(FileStore, "move_all", _no_space)

    with pytest.raises(StorageError, match=r"silver\.orders"):
        lake.append("silver", "orders", spark.createDataFrame([(1, "a")], "id long, v string"))


# --------------------------------------------------------------------------- read-only and missing paths
def _can_bind_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return False
    script = f"mount --bind {probe} {probe} && mount -o remount,bind,ro {probe} && ! touch {probe}/x 2>/dev/null"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def read_only_run(spark, tmp_path_factory):
    """A bronze run (subprocess) against a lakehouse bind-mounted read-only: (completed process, files before, files after)."""
    tmp_path = tmp_path_factory.mktemp("read_only")
    if not _can_bind_read_only(tmp_path):
        pytest.skip("needs `unshare -m` and bind mounts (root with CAP_SYS_ADMIN); chmod does not stop root")
    _write(tmp_path, "crm/a.csv", _crm(f"1,Ayse,TR,{TS}"))
    run_pipeline(spark, _config(tmp_path, CRM), stages=["bronze"], run_id="writable")
    _write(tmp_path, "crm/b.csv", _crm(f"2,Bob,DE,{TS}"))
    lake_dir = tmp_path / "lake"
    config = tmp_path / "cdp.yaml"
    config.write_text(json.dumps({"paths": {"landing": str(tmp_path / "landing"), "lakehouse": str(lake_dir)}, "sources": [CRM],
                                  "spark": {"master": "local[1]", "shuffle_partitions": 1}}))
    before = _files_under(lake_dir)
    script = (
        f"mount --bind {lake_dir} {lake_dir} && mount -o remount,bind,ro {lake_dir} && "
        f"exec {sys.executable} -m cdp_spark.cli run --config {config} --stage bronze --run-id read-only"
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return done, lake_dir, before


def test_read_only_lakehouse_fails_naming_the_path_and_changes_nothing(read_only_run):
    done, lake_dir, before = read_only_run
    output = done.stdout + done.stderr

    assert done.returncode != 0, output[-3000:]
    assert "Read-only file system" in output and str(lake_dir) in output, output[-3000:]
    assert _files_under(lake_dir) == before


def test_read_only_lakehouse_is_reported_without_a_traceback(read_only_run):
    done, _, _ = read_only_run

    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr


def test_missing_lakehouse_path_is_created(spark, tmp_path):
    _write(tmp_path, "crm/a.csv", _crm(f"1,Ayse,TR,{TS}", f"2,Bob,DE,{TS}"))
    lakehouse = tmp_path / "not" / "yet" / "there"
    cfg = _config(tmp_path, CRM, lakehouse=lakehouse)

    results = run_pipeline(spark, cfg, stages=["bronze"], run_id="r1")

    assert [(r.stage, r.status) for r in results] == [("bronze", "succeeded")]
    assertDataFrameEqual(_lake(spark, lakehouse).read("bronze", "crm").select("customer_id", "name"), [("1", "Ayse"), ("2", "Bob")])


def test_missing_landing_directory_fails_naming_the_path(spark, tmp_path):
    landing = tmp_path / "no-such-landing"
    cfg = _config(tmp_path, CRM, landing=landing)

    results = run_pipeline(spark, cfg, stages=["bronze"], run_id="r1")

    assert results[0].status == "failed" and str(landing) in (results[0].error or "")


# --------------------------------------------------------------------------- corrupt inputs and logs
def test_corrupt_parquet_in_landing_is_quarantined_and_the_other_files_ingested(spark, tmp_path):
    for name, ids in (("a", ["t1", "t2"]), ("c", ["t3"])):
        table = pa.table({"transaction_id": ids, "txn_ts": ["2026-03-01T10:00:00"] * len(ids), "amount": [1.5] * len(ids)})
        path = tmp_path / "landing" / "pos" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    _write(tmp_path, "pos/b.parquet", b"PAR1" + os.urandom(2048) + b"PAR1")
    cfg = _config(tmp_path, POS)

    results = run_pipeline(spark, cfg, stages=["bronze"], run_id="r1")

    assert [(r.stage, r.status) for r in results] == [("bronze", "succeeded")]
    lake = _lake(spark, tmp_path / "lake")
    assertDataFrameEqual(lake.read("bronze", "pos").select("transaction_id", _basename("_file_path")), [("t1", "a.parquet"), ("t2", "a.parquet"), ("t3", "c.parquet")])
    assertDataFrameEqual(
        lake.read("bronze", "quarantine").select(_basename("file_path"), "level", F.substring_index("reason", ":", 1)),
        [("b.parquet", "file", R.CORRUPT_PARQUET)],
    )


def _truncate_last_log_entry(table_dir: Path) -> Path:
    entry = sorted((table_dir / "_delta_log").glob("*.json"))[-1]
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    return entry


def test_truncated_delta_log_entry_fails_naming_the_table_and_the_file(spark, tmp_path):
    lake = _lake(spark, tmp_path / "lake")
    lake.append("silver", "orders", spark.createDataFrame([(1, "a")], "id long, v string"))
    lake.append("silver", "orders", spark.createDataFrame([(2, "b")], "id long, v string"))
    entry = _truncate_last_log_entry(tmp_path / "lake" / "silver" / "orders")

    with pytest.raises(StorageError, match=rf"silver\.orders.*{entry.name}"):
        lake.read("silver", "orders")
    with pytest.raises(StorageError, match=rf"silver\.orders.*{entry.name}"):
        lake.append("silver", "orders", spark.createDataFrame([(3, "c")], "id long, v string"))


def test_truncated_delta_log_entry_stops_the_stage_before_any_commit(spark, tmp_path):
    _write(tmp_path, "crm/a.csv", _crm(f"1,Ayse,TR,{TS}"))
    cfg = _config(tmp_path, CRM)
    run_pipeline(spark, cfg, stages=["bronze"], run_id="r1")
    _write(tmp_path, "crm/b.csv", _crm(f"2,Bob,DE,{TS}"))
    _truncate_last_log_entry(tmp_path / "lake" / "ops" / "ingestion_log")
    lake = _lake(spark, tmp_path / "lake")
    bronze_before = _files_under(tmp_path / "lake" / "bronze")
    log_entries = sorted(p.name for p in (tmp_path / "lake" / "ops" / "ingestion_log" / "_delta_log").iterdir())

    results = run_pipeline(spark, cfg, stages=["bronze"], run_id="r2")

    assert [(r.stage, r.status) for r in results] == [("bronze", "failed")]
    assert _files_under(tmp_path / "lake" / "bronze") == bronze_before
    assert sorted(p.name for p in (tmp_path / "lake" / "ops" / "ingestion_log" / "_delta_log").iterdir()) == log_entries
    assert lake.read("ops", "run_log").where("run_id = 'r2'").select("stage", "status").collect() == [("bronze", "failed")]


# --------------------------------------------------------------------------- hostile input
def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _hostile_landing(tmp_path: Path, big_line_bytes: int) -> None:
    _write(tmp_path, "crm/good.csv", _crm(f"1,Ayse,TR,{TS}"))
    _write(tmp_path, "crm/garbage.csv", bytes(range(256)) * 64)
    _write(tmp_path, "events/good.jsonl", b'{"event_id": "e1", "ts": "2026-03-01T10:00:00"}\n')
    _write(tmp_path, "events/deep.jsonl", ('{"event_id": "e2", "ts": "2026-03-01T10:00:00", "x": ' + _nested(100) + "}\n").encode())
    # Deeper than the JSON parser's own nesting limit (1000): rejected by the parser, not by the bound.
    _write(tmp_path, "events/deeper.jsonl", ('{"event_id": "e4", "ts": "2026-03-01T10:00:00", "x": ' + _nested(5000) + "}\n").encode())
    big = tmp_path / "landing" / "events" / "big.jsonl"
    with open(big, "wb") as fh:  # one line, streamed to disk
        fh.write(b'{"event_id": "e3", "ts": "2026-03-01T10:00:00", "blob": "')
        chunk = b"x" * (1 << 20)
        for _ in range(big_line_bytes // len(chunk)):
            fh.write(chunk)
        fh.write(b'"}\n')


def _assert_hostile_files_quarantined(spark, tmp_path: Path, results) -> None:
    assert [(r.stage, r.status) for r in results] == [("bronze", "succeeded")], [r.error for r in results]
    lake = _lake(spark, tmp_path / "lake")
    assertDataFrameEqual(lake.read("bronze", "crm").select("customer_id"), [("1",)])
    assertDataFrameEqual(lake.read("bronze", "events").select("event_id"), [("e1",)])
    quarantined = lake.read("bronze", "quarantine").select("source", _basename("file_path"), "reason")
    assertDataFrameEqual(
        quarantined,
        [
            ("crm", "garbage.csv", R.BINARY_FILE),
            ("events", "deep.jsonl", R.JSON_TOO_DEEP),
            ("events", "deeper.jsonl", R.MALFORMED_JSON),
            ("events", "big.jsonl", R.OVERSIZED),
        ],
    )


def test_hostile_inputs_are_quarantined_without_stopping_the_other_files(spark, tmp_path):
    _hostile_landing(tmp_path, big_line_bytes=50 << 20)

    results = run_pipeline(spark, _config(tmp_path, CRM, EVENTS), stages=["bronze"], run_id="r1")

    _assert_hostile_files_quarantined(spark, tmp_path, results)


@pytest.mark.slow
def test_a_one_gigabyte_single_line_json_file_is_quarantined(spark, tmp_path):
    _hostile_landing(tmp_path, big_line_bytes=1 << 30)

    results = run_pipeline(spark, _config(tmp_path, CRM, EVENTS), stages=["bronze"], run_id="r1")

    _assert_hostile_files_quarantined(spark, tmp_path, results)
