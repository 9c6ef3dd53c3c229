"""Local disk and shuffle volume of one pipeline stage: how much Spark's block manager holds at its peak.

Runs ``run_stage`` for one stage of an existing lakehouse (embedded session from the config, with
the Spark UI on for its REST API), samples the size of the block manager directories this session
creates (shuffle files, cached and checkpointed blocks) every ``--every`` seconds, and reports the
peak, the total shuffle bytes written, and the stages that wrote the most. Compare two versions of
the code on one lakehouse by running the script from each checkout (``PYTHONPATH``); clear the
stage's output tables between runs when a rerun would take another path (identity reads its
previous assignment).

    PYTHONPATH=. .venv/bin/python scripts/bench_stage_disk.py --config cdp.yaml --stage identity --out disk.json
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

log = logging.getLogger("bench_stage_disk")


def _local_dirs() -> list[str]:
    roots = os.environ.get("SPARK_LOCAL_DIRS", tempfile.gettempdir()).split(",")
    return [d for root in roots for d in glob.glob(os.path.join(root, "blockmgr-*"))]


def _size_mb(dirs: list[str]) -> int:
    if not dirs:
        return 0
    out = subprocess.run(["du", "-smc", *dirs], capture_output=True, text=True).stdout.split()
    return int(out[-2]) if len(out) >= 2 else 0


class DiskSampler:
    """Samples the total size of the block manager directories created after it started."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.before = set(_local_dirs())
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mine = [d for d in _local_dirs() if d not in self.before]
            self.samples.append((round(time.monotonic() - self._t0, 1), _size_mb(mine)))
            self._stop.wait(self.every)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> tuple[float, int]:
        return max(self.samples, key=lambda s: s[1], default=(0.0, 0))


def _rest(spark: SparkSession, path: str) -> Any:
    url = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}/{path}"
    with urllib.request.urlopen(url) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="cdp config of an existing lakehouse")
    parser.add_argument("--stage", required=True, help="the stage to run (its inputs must exist)")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between disk samples")
    parser.add_argument("--top", type=int, default=15, help="stages listed by shuffle bytes written")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    from cdp_spark.config import load_config
    from cdp_spark.pipeline import run_stage
    from cdp_spark.session import configure_builder

    cfg = load_config(args.config)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with DiskSampler(args.every) as disk:
        spark = configure_builder(SparkSession.builder, cfg.spark, cfg.paths.checkpoints).config("spark.ui.enabled", "true").getOrCreate()
        spark.sparkContext.setCheckpointDir(cfg.paths.checkpoints)
        result = run_stage(spark, cfg, args.stage, run_id=f"disk-{int(time.time())}")
    stages = _rest(spark, "stages?status=complete")
    figures = {
        "stage": args.stage,
        "status": result.status,
        "error": result.error,
        "seconds": round(result.seconds, 1),
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "block_manager_peak_mb": disk.peak[1],
        "block_manager_peak_at_s": disk.peak[0],
        "shuffle_written_mb": round(sum(s["shuffleWriteBytes"] for s in stages) / 1e6),
        "spilled_to_disk_mb": round(sum(s["diskBytesSpilled"] for s in stages) / 1e6),
        "top_shuffle_writers": [
            {"stage_id": s["stageId"], "written_mb": round(s["shuffleWriteBytes"] / 1e6), "rows": s["shuffleWriteRecords"], "name": s["name"]}
            for s in sorted(stages, key=lambda s: -s["shuffleWriteBytes"])[: args.top]
        ],
        "samples": disk.samples,
    }
    print(result.line())
    print(
        f"block manager peak {figures['block_manager_peak_mb']:,} MB at {figures['block_manager_peak_at_s']:.0f} s; "
        f"shuffle written {figures['shuffle_written_mb']:,} MB; spilled {figures['spilled_to_disk_mb']:,} MB"
    )
    for s in figures["top_shuffle_writers"]:
        print(f"  stage {s['stage_id']:>5}: {s['written_mb']:>7,} MB, {s['rows']:>12,} rows  {s['name'][:70]}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2, default=str))
        print(f"wrote {args.out}")
    spark.stop()
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
