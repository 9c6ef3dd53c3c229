"""Crash safety: fault points, the trial harness's oracle, and kill-and-rerun trials against a clean run.

The trials run ``cdp run`` as subprocesses (scripts/fault_trials.py). One clean baseline per test
session; set ``CDP_FAULT_TRIALS_WORKDIR`` to keep it (and the generated data) between sessions.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from cdp_spark import faults

ROOT = Path(__file__).resolve().parents[1]


def _load_harness():
    spec = importlib.util.spec_from_file_location("fault_trials", ROOT / "scripts" / "fault_trials.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_trials"] = module
    spec.loader.exec_module(module)
    return module


ft = _load_harness()


@pytest.fixture(autouse=True)
def _fresh_fault_state(monkeypatch):
    for var in (faults.ENV_POINT, faults.ENV_SEED, faults.ENV_PROBABILITY):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(faults, "_hits", type(faults._hits)())


# --------------------------------------------------------------------------- fault points
def _fired(calls: list[tuple[str, str | None]]) -> list[bool]:
    return [faults.should_fire(name, detail) for name, detail in calls]


def test_a_fault_point_fires_only_when_named(monkeypatch):
    monkeypatch.setenv(faults.ENV_POINT, "gold.after_profile")

    assert _fired([("silver.between_tables", None), ("gold.after_profile", None), ("gold.after_profile", None)]) == [False, True, True]


def test_a_detail_and_a_hit_number_narrow_the_point(monkeypatch):
    monkeypatch.setenv(faults.ENV_POINT, "lake.after_commit:gold.b#2, silver.between_tables#3")
    calls = [("lake.after_commit", "gold.a"), ("lake.after_commit", "gold.b"), ("lake.after_commit", "gold.a"), ("lake.after_commit", "gold.b")]
    calls += [("silver.between_tables", t) for t in ("orders", "consents", "fx_rates", "identifiers")]

    assert _fired(calls) == [False, False, False, True, False, False, True, False]


def test_random_faults_are_a_function_of_the_seed(monkeypatch):
    monkeypatch.setenv(faults.ENV_SEED, "7")
    monkeypatch.setenv(faults.ENV_PROBABILITY, "0.2")
    calls = [("lake.after_commit", f"t{i % 5}") for i in range(2000)]
    first = _fired(calls)
    monkeypatch.setattr(faults, "_hits", type(faults._hits)())
    again = _fired(calls)
    monkeypatch.setenv(faults.ENV_SEED, "8")
    monkeypatch.setattr(faults, "_hits", type(faults._hits)())
    other = _fired(calls)

    assert first == again and first != other
    assert 0.17 < sum(first) / len(first) < 0.23


def test_a_logged_fault_is_matched_to_the_planned_spec():
    trial = ft.Trial("t", "silver", "silver", fault="silver.between_tables#2")
    narrowed = ft.Trial("t", "gold", "gold", fault="lake.after_commit:gold.a#1")

    assert [trial.fired_as_planned(f) for f in ("silver.between_tables:orders", "gold.after_profile", None)] == [True, False, False]
    assert [narrowed.fired_as_planned(f) for f in ("lake.after_commit:gold.a", "lake.after_commit:gold.b")] == [True, False]


def test_no_environment_no_fault():
    assert _fired([(name, None) for name in faults.POINTS]) == [False] * len(faults.POINTS)


def test_a_firing_point_kills_the_process_like_sigkill():
    code = "from cdp_spark.faults import fault_point\nfault_point('gold.after_profile')\nprint('survived')"
    env = {**os.environ, faults.ENV_POINT: "gold.after_profile"}

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert (done.returncode, done.stdout) == (137, "")


def test_bronze_fault_points_go_through_the_shared_switch(monkeypatch):
    from cdp_spark.ingest import _faults

    fired = []
    monkeypatch.setattr(_faults, "_crash", fired.append)
    monkeypatch.setenv(faults.ENV_POINT, "bronze.after_plan,bronze.after_data_commit#2")
    for name in ("bronze.after_plan", "bronze.after_data_commit", "bronze.after_data_commit"):
        _faults.fault_point(name)

    assert fired == ["bronze.after_plan", "bronze.after_data_commit"]


# --------------------------------------------------------------------------- the oracle
def _state(tmp_path: Path, name: str, tables: dict[str, pa.Table]) -> Path:
    state = tmp_path / name
    for table, data in tables.items():
        layer, table_name = table.split(".")
        write_deltalake(str(state / "lakehouse" / layer / table_name), data)
    return state


def test_the_oracle_ignores_run_ids_and_run_times_but_not_data(tmp_path):
    clean = pa.table({"customer_uid": ["a", "b"], "run_id": ["clean", "clean"], "created_at": [1, 2], "path": [f"{tmp_path}/clean/x", "y"]})
    same = pa.table({"customer_uid": ["b", "a"], "run_id": ["r2", "r1"], "created_at": [5, 6], "path": ["y", f"{tmp_path}/trial/x"]})
    changed = pa.table({"customer_uid": ["a", "c"], "run_id": ["r", "r"], "created_at": [1, 2], "path": [f"{tmp_path}/trial/x", "y"]})
    doubled = pa.concat_tables([same, same])
    expected = _state(tmp_path, "clean", {"gold.identity_map": clean})

    for name, table, differs in (("trial", same, False), ("changed", changed, True), ("doubled", doubled, True)):
        state = _state(tmp_path, name, {"gold.identity_map": table})
        compared, differences = ft.compare_lakehouses(expected, state)
        assert (compared, bool(differences)) == (1, differs), (name, differences)


def test_the_oracle_equates_times_taken_from_each_runs_ingestion_time_only(tmp_path):
    from datetime import datetime

    def state(name: str, ingested: datetime, event: datetime) -> Path:
        bronze = pa.table({"id": ["L1", "E1"], "_ingested_at": [ingested, ingested]})
        silver = pa.table({"record_id": ["L1", "E1"], "seen_at": [ingested, event]})  # L1 has no event time of its own
        return _state(tmp_path, name, {"bronze.crm": bronze, "silver.identifiers": silver})

    clean = state("clean", datetime(2026, 11, 25, 5, 0), datetime(2026, 3, 1, 10, 0))
    later = state("later", datetime(2026, 11, 25, 6, 0), datetime(2026, 3, 1, 10, 0))
    other_event = state("other", datetime(2026, 11, 25, 6, 0), datetime(2026, 3, 2, 10, 0))

    assert ft.compare_lakehouses(clean, later)[1] == {}
    assert list(ft.compare_lakehouses(clean, other_event)[1]) == ["silver.identifiers"]


def test_the_oracle_leaves_out_an_abandoned_runs_log_rows_only_when_told(tmp_path):
    clean = pa.table({"customers": [10], "run_id": ["clean"]})
    after_fresh_rerun = pa.table({"customers": [10, 10], "run_id": ["crashed", "fresh"]})
    expected = _state(tmp_path, "clean", {"gold.identity_metrics": clean})
    trial = _state(tmp_path, "trial", {"gold.identity_metrics": after_fresh_rerun})

    assert ft.compare_lakehouses(expected, trial, crashed_run_ids=frozenset({"crashed"}))[1] == {}
    assert "gold.identity_metrics" in ft.compare_lakehouses(expected, trial)[1]


def test_a_cut_delta_log_entry_counts_as_a_corrupt_table(tmp_path):
    state = _state(tmp_path, "s", {"silver.orders": pa.table({"id": [1]}), "silver.fx_rates": pa.table({"id": [2]})})
    entry = state / "lakehouse" / "silver" / "orders" / "_delta_log" / "00000000000000000000.json"
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])

    assert [c.split(":")[0] for c in ft.corrupt_tables(state / "lakehouse")] == ["silver.orders"]


# --------------------------------------------------------------------------- kill-and-rerun trials
@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    root = os.environ.get("CDP_FAULT_TRIALS_WORKDIR")
    path = Path(root) if root else tmp_path_factory.mktemp("fault_trials")
    return ft.prepare_workspace(path, customers=200, seed=11)


def _assert_recovered(result) -> None:
    crashed = result.crashed
    detail = f"{result.line()}\ncrashed log: {crashed.log_path}\nrerun log: {result.rerun.log_path if result.rerun else '-'}"
    assert result.corrupt_after_crash == [] and result.corrupt == [], detail
    assert result.rerun is not None and result.rerun.exit_code == 0, detail
    assert result.differences == {}, detail
    assert result.bronze_counts_equal and result.duplicate_ingestion_log_rows == 0, detail


@pytest.mark.slow  # builds a ~7 min baseline; run with ./scripts/test.sh --slow
@pytest.mark.parametrize("trial", ft.DEFAULT_TRIALS, ids=lambda t: t.name)
def test_a_run_killed_at_a_fault_point_reruns_to_the_clean_result(workspace, trial):
    ft.build_baseline(workspace, last="identity")

    result = ft.run_trial(workspace, trial)

    assert result.crashed.exit_code == 137 and trial.fired_as_planned(result.crashed.fault_fired), result.line()
    _assert_recovered(result)


# The 20-trial plan: kill points spread over every stage; each resumed run must equal the clean run.
@pytest.mark.slow
@pytest.mark.parametrize("index", range(20))
def test_twenty_kill_and_rerun_trials_cover_every_stage(workspace, index):
    timings = ft.build_baseline(workspace, last="score")
    trial = ft.trial_plan(20, seed=11, timings=timings)[index]

    result = ft.run_trial(workspace, trial)

    if trial.fault:
        assert trial.fired_as_planned(result.crashed.fault_fired), result.line()
    _assert_recovered(result)


def test_a_stage_that_exits_the_interpreter_is_recorded_as_failed(spark, monkeypatch):
    import cdp_spark.pipeline as pipeline

    def exits(*_args, **_kwargs):
        raise SystemExit(0)  # what pyspark.sql.connect does on import under `python -c`

    monkeypatch.setattr(pipeline, "stage_function", lambda stage: exits)

    result = pipeline.run_stage(spark, None, "silver", run_id="exit-0")

    assert result.status == "failed"
    assert result.error.startswith("SystemExit(0) raised inside the stage")
