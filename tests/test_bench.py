"""Smoke test of scripts/bench.py: two tiny scales, the incremental run and the markdown, end to end.

Marked ``bench``: it runs the whole pipeline three times in a JVM of its own (about 9 minutes on two
idle cores), so it is not in the default suite; ``./scripts/test.sh --bench`` runs it, and so does CI
after the default suite. It is as small as the pipeline allows: two scales of a few hundred customers
over 60 days (the bench shortens the model label windows to fit), no baselines, no warm-up, two
shuffle partitions and few GBT iterations. Never asserts on timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdp_spark.pipeline import STAGES

pytestmark = [pytest.mark.bench, pytest.mark.timeout(1800)]  # the whole pipeline three times; slow when the machine is shared

ROOT = Path(__file__).resolve().parents[1]
SCALES = (150, 300)


def _run_bench(tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "scripts/bench.py",
        "--scales", *map(str, SCALES),
        "--days", "60",
        "--no-baselines",
        "--warmup-customers", "0",
        "--set", "spark.shuffle_partitions=2",
        "--set", "models.gbt_max_iter=5",
        "--out", str(tmp_path),
        "--markdown", str(tmp_path / "b.md"),
        "--notes", str(tmp_path / "notes.md"),
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    (tmp_path / "bench.log").write_text(proc.stdout + "\n----- stderr -----\n" + proc.stderr)
    return proc


def test_bench_smoke(tmp_path):
    (tmp_path / "notes.md").write_text("The machine was idle.\n")
    proc = _run_bench(tmp_path)
    assert proc.returncode == 0, f"bench.py failed (log: {tmp_path / 'bench.log'}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads((tmp_path / "bench.json").read_text())

    assert [s["customers"] for s in result["scales"]] == list(SCALES)
    for scale in result["scales"]:
        stages = scale["full"]["stages"]
        assert [s["stage"] for s in stages] == list(STAGES)
        for s in stages:
            assert s["status"] == "succeeded", s
            assert s["seconds"] > 0
            assert s["rows_out"] >= 0 and s["files_added"] >= 0
        assert scale["generation"]["landing_rows"] > 0
        quality = scale["identity_quality"]  # against the generator's truth files
        assert quality["records"] > 0 and 0 < quality["precision"] <= 1 and 0 < quality["recall_linkable"] <= 1
    assert result["machine"]["cpu_count"] and result["spark"]["spark"]

    (growth,) = result["growth"]
    assert (growth["from"], growth["to"]) == SCALES
    assert set(growth["stages"]) == set(STAGES) and all(v is not None and v > 0 for v in growth["stages"].values())
    assert growth["pipeline"] is not None and growth["pipeline"] > 0

    inc = result["incremental"]
    assert inc["customers"] == SCALES[-1] and inc["increment_customers"] >= 1
    assert all(inc["stages"][stage]["ratio"] is not None and inc["stages"][stage]["ratio"] > 0 for stage in STAGES)
    assert inc["pipeline"]["ratio"] is not None and inc["pipeline"]["ratio"] > 0
    assert all(s["status"] == "succeeded" for s in result["scales"][-1]["incremental"]["stages"])
    stability = result["scales"][-1]["incremental"]["id_stability"]
    assert stability["ids_compared"] > 0 and stability["new_records"] > 0 and 0 <= stability["share"] <= 1

    statuses = {t["target"]: t["status"] for t in result["targets"]}
    assert len(statuses) == 9 and set(statuses.values()) <= {"met", "missed", "not measured"}
    assert all(t["status"] == "not measured" and "not measured in this run" in t["measured"] for t in result["targets"] if "CC" in t["target"])
    pipeline_1m = next(t for t in result["targets"] if "1,000,000 customers" in t["target"])
    assert pipeline_1m["measured"] == f"not measured in this run (largest scale {SCALES[-1]:,})"

    md = (tmp_path / "b.md").read_text()
    assert "## Pipeline: per scale and stage" in md
    assert "| customers | stage | status | seconds |" in md
    for stage in STAGES:
        assert f"| {SCALES[0]:,} | {stage} | succeeded |" in md
    assert "## Growth" in md and "## Incremental" in md
    assert "## Targets" in md and "| target | measured | result |" in md
    assert "## Identity quality" in md and "| IDs compared | IDs kept |" in md
    assert md.rstrip().endswith("## Conditions of this run\n\nThe machine was idle.")
