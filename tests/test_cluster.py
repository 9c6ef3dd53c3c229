"""The whole pipeline through spark-submit on a real standalone cluster, with the packaged code."""

from __future__ import annotations

import os
from datetime import date, timedelta
import subprocess
import sys
from pathlib import Path

import pytest

from cdp_spark.pipeline import STAGES
from tests.standalone import standalone_cluster

ROOT = Path(__file__).resolve().parents[1]
# Six spark-submit runs against a real cluster: allow more than the suite-wide 900 s on a loaded machine.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]


def _spark_submit() -> str:
    import pyspark

    return str(Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit")


def test_pipeline_runs_with_spark_submit_on_a_standalone_cluster(tmp_path):
    from cdp_spark.packaging import build_zip
    from cdp_spark.synthetic import generate

    start = date.today() - timedelta(days=200)
    generate(tmp_path / "data", customers=200, seed=11, days=200, start=start.isoformat())
    zip_path = build_zip(tmp_path / "dist")
    config = tmp_path / "cluster.yaml"
    config.write_text(
        f"include: [{ROOT / 'conf' / 'sources.yaml'}]\n"
        "paths:\n"
        f"  landing: {tmp_path / 'data' / 'landing'}\n"
        f"  lakehouse: {tmp_path / 'lakehouse'}\n"
        f"  checkpoints: {tmp_path / 'checkpoints'}\n"
        f"  exports: {tmp_path / 'exports'}\n"
        f"  reports: {tmp_path / 'reports'}\n"
        f"  mlflow_tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}\n"
        f"  mlflow_artifacts: {tmp_path / 'mlartifacts'}\n"
        "spark: {mode: cluster, log_level: WARN}\n"
        "models: {gbt_max_iter: 5, churn_days: 60, propensity_days: 30}\n"
    )
    env = dict(os.environ, CDP_PSEUDONYMIZATION_KEY="cluster-test-key-0123456789abcdef", PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    with standalone_cluster(tmp_path / "cluster", workers=2, cores=1, memory="1500m") as master:
        for stage in STAGES:
            cmd = [
                _spark_submit(), "--master", master, "--py-files", str(zip_path),
                "--conf", "spark.executor.memory=1200m", "--conf", "spark.driver.memory=2g", "--conf", "spark.sql.shuffle.partitions=4",
                str(ROOT / "jobs" / f"{stage}.py"), "--config", str(config), "--run-id", "cluster-test",
            ]
            proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"{stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            # spark-submit merges the Python driver's stderr (our log lines) into its stdout
            loaded = [line for line in (proc.stdout + proc.stderr).splitlines() if "cdp_spark loaded from" in line]
            assert loaded and loaded[0].endswith(f"cdp_spark loaded from {zip_path}"), f"{stage} did not run the packaged code: {loaded}"
            assert f"[{stage:<8}] succeeded" in proc.stdout
    import deltalake

    lakehouse = tmp_path / "lakehouse"
    identity_map = deltalake.DeltaTable(str(lakehouse / "gold" / "identity_map")).to_pyarrow_table()
    profiles = deltalake.DeltaTable(str(lakehouse / "gold" / "customer_profile")).to_pyarrow_table()
    scores = deltalake.DeltaTable(str(lakehouse / "gold" / "customer_scores")).to_pyarrow_table()
    runs = deltalake.DeltaTable(str(lakehouse / "ops" / "run_log")).to_pyarrow_table().to_pylist()
    assert identity_map.num_rows > 300
    assert 0 < profiles.num_rows <= identity_map.num_rows
    assert scores.num_rows > 0 and set(scores.column("run_id").to_pylist()) == {"cluster-test"}
    assert sorted(r["stage"] for r in runs if r["status"] == "succeeded") == sorted(STAGES)
