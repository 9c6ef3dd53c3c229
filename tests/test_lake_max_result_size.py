"""No whole-table collect: write, upsert and delete a table far larger than spark.driver.maxResultSize.

maxResultSize is fixed per SparkContext, so the work runs in a subprocess with its own session.
Marked slow (run with -m slow). The script also shows the limit bites: collecting the table it just wrote must fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = 150_000
UPDATE_EVERY = 1_000

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from cdp_spark.config import SparkConfig
    from cdp_spark.lake import Lake
    from cdp_spark.session import configure_builder

    root, rows, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = SparkConfig(master="local[2]", driver_memory="1g", shuffle_partitions=4, log_level="ERROR",
                      conf={"spark.driver.maxResultSize": "1m"})
    spark = configure_builder(SparkSession.builder, cfg).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def wide(ids, tag):
        key = F.concat(F.lit(tag), F.col("id").cast("string"))
        return ids.select(
            "id",
            (F.col("id") % 8).cast("string").alias("bucket"),
            F.sha2(key, 512).alias("a"),
            F.sha2(key, 256).alias("b"),
            F.lit(tag).alias("tag"),
        )

    lake = Lake(spark, root, engine="delta-rs")
    started = time.monotonic()
    lake.append("bronze", "big", wide(spark.range(rows).repartition(4), "v1"), partition_by=["bucket"])
    table = Path(root) / "bronze" / "big"
    append_s = time.monotonic() - started
    table_bytes = sum(p.stat().st_size for p in table.rglob("*.parquet"))

    try:
        lake.read("bronze", "big").collect()
        collect_failed = False
    except Exception as exc:
        collect_failed = "maxResultSize" in str(exc)

    changes = wide(spark.range(0, rows + rows // every * every, every), "v2")  # half updates, half inserts
    started = time.monotonic()
    upsert = lake.upsert("bronze", "big", changes, keys=["id"])
    upsert_s = time.monotonic() - started
    delete = lake.delete("bronze", "big", "id % 10 = 3")
    delete_s = time.monotonic() - upsert_s - started

    final = lake.read("bronze", "big")
    print(json.dumps({
        "table_bytes": table_bytes,
        "collect_failed": collect_failed,
        "rows": final.count(),
        "v2_rows": final.where("tag = 'v2'").count(),
        "upsert_files_removed": upsert.files_removed,
        "delete_files_removed": delete.files_removed,
        "seconds": {"append": round(append_s, 1), "upsert": round(upsert_s, 1), "delete": round(delete_s, 1)},
    }))
    """
)


@pytest.mark.slow  # ~2 min on the shared 2-core machine (own SparkContext, ~30 MB table)
def test_write_upsert_and_delete_of_a_table_larger_than_max_result_size(tmp_path: Path) -> None:
    script = tmp_path / "big_table.py"
    script.write_text(SCRIPT)

    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "lakehouse"), str(ROWS), str(UPDATE_EVERY)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    changed = 2 * ROWS // UPDATE_EVERY  # ids 0, 1000, ... below 2 * ROWS
    deleted = ROWS // 10  # id % 10 == 3; the changed ids (multiples of 1000) are never among them
    assert report["table_bytes"] > 20 * 1024 * 1024  # the table is > 20x maxResultSize
    assert report["collect_failed"], "collecting the table should exceed spark.driver.maxResultSize"
    assert report["rows"] == ROWS + changed // 2 - deleted
    assert report["v2_rows"] == changed  # ids % 1000 == 0 are never % 10 == 3
    assert report["upsert_files_removed"] > 0 and report["delete_files_removed"] > 0
