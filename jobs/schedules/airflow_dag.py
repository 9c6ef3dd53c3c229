"""Airflow DAG: one task per cdp-spark stage, in order, with retries and the logical run date.

Copy into the Airflow dags folder (or point ``CDP_SPARK_HOME`` at a checkout). Each task is a
spark-submit of the stage's thin job with the packaged code (``cdp package`` builds ``dist/``).
All tasks of one DAG run share the run id, so ``cdp status`` shows them as one run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

CDP_HOME = os.environ.get("CDP_SPARK_HOME", "/opt/cdp-spark")
SPARK_MASTER = os.environ.get("CDP_SPARK_MASTER", "spark://spark-master:7077")
CONFIG = os.environ.get("CDP_SPARK_CONFIG", f"{CDP_HOME}/conf/cluster.yaml")
STAGES = ("bronze", "silver", "identity", "gold", "train", "score")

default_args = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=3),
}

with DAG(
    dag_id="cdp_spark_daily",
    description="cdp-spark: bronze → silver → identity → gold → train → score",
    start_date=datetime(2026, 1, 1),
    schedule="0 2 * * *",
    catchup=False,
    max_active_runs=1,  # the lakehouse run lock refuses concurrent runs anyway
    default_args=default_args,
    tags=["cdp", "spark"],
) as dag:
    previous = None
    for stage in STAGES:
        task = BashOperator(
            task_id=stage,
            bash_command=(
                f"spark-submit --master {SPARK_MASTER} --py-files {CDP_HOME}/dist/cdp_spark.zip "
                f"{CDP_HOME}/jobs/{stage}.py --config {CONFIG} "
                "--run-date {{ ds }} --run-id '{{ run_id }}'"
            ),
            retries=0 if stage == "train" else default_args["retries"],  # training is rerun by hand, not blindly
        )
        if previous is not None:
            previous >> task
        previous = task
