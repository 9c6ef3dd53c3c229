"""Scheduling definitions: the Airflow DAG and the Databricks bundle describe the same pipeline."""

import ast
from pathlib import Path

import yaml

from cdp_spark.pipeline import STAGES

SCHEDULES = Path(__file__).resolve().parents[1] / "jobs" / "schedules"


def test_airflow_dag_has_one_task_per_stage_in_order_with_retries():
    # Airflow is not a test dependency (it pins its own SQLAlchemy and Flask); check the structure instead.
    tree = ast.parse((SCHEDULES / "airflow_dag.py").read_text())
    assigns = {n.targets[0].id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    assert tuple(ast.literal_eval(assigns["STAGES"])) == STAGES
    default_args = {k.value: v for k, v in zip(assigns["default_args"].keys, assigns["default_args"].values)}
    assert ast.literal_eval(default_args["retries"]) >= 1
    dag_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DAG")
    kwargs = {k.arg: k.value for k in dag_call.keywords}
    assert ast.literal_eval(kwargs["dag_id"]) == "cdp_spark_daily"
    assert ast.literal_eval(kwargs["max_active_runs"]) == 1
    source = (SCHEDULES / "airflow_dag.py").read_text()
    assert "--run-date {{ ds }}" in source and "jobs/{stage}.py" in source and "previous >> task" in source


def test_databricks_bundle_runs_every_stage_after_the_previous_one():
    bundle = yaml.safe_load((SCHEDULES / "databricks.yml").read_text())
    assert set(bundle) >= {"bundle", "resources", "targets"}
    job = bundle["resources"]["jobs"]["cdp_spark_daily"]
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == list(STAGES)
    for previous, task in zip(tasks, tasks[1:]):
        assert task["depends_on"] == [{"task_key": previous["task_key"]}]
    for task in tasks:
        python_file = task["spark_python_task"]["python_file"]
        assert (SCHEDULES / python_file).resolve() == (SCHEDULES.parent / f"{task['task_key']}.py").resolve()
        assert (SCHEDULES.parent / f"{task['task_key']}.py").is_file()
        assert task["spark_python_task"]["parameters"][:2] == ["--config", "${var.config}"]
    assert job["max_concurrent_runs"] == 1


def test_empty_run_date_from_a_scheduler_means_none():
    from cdp_spark.jobs import parse_args

    assert parse_args("bronze", ["--config", "conf/local.yaml", "--run-date", ""]).run_date is None
