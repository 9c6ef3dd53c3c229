#!/usr/bin/env python
"""Crash trials: kill the pipeline at fault points or after a random delay, rerun it, compare with a clean run.

A workspace holds one generated data set, one pseudonymization secret and a clean *baseline*:
the pipeline run stage by stage (``cdp run --stage S``) with a snapshot of the whole state
(lakehouse, MLflow store, exports) taken before every stage and after the last. A trial copies
the snapshot before its first stage, runs ``cdp run --stage first .. --stage last`` as a
subprocess with ``CDP_FAULT_POINT`` set (or kills the process group with SIGKILL after a delay),
reruns the same stages without faults (same run id = resume, or a fresh run id), and compares
every table with the baseline snapshot after its last stage (see ``docs/reliability.md``).

    .venv/bin/python scripts/fault_trials.py --trials 20 --workdir /tmp/cdp-faults
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("bronze", "silver", "identity", "gold", "train", "score")
BASELINE_RUN_ID = "clean-run"
RUN_TIMEOUT_SECONDS = 3600
FLOAT_DIGITS = 9  # significant digits floats are compared at (ML scores are refit on rerun)

log = logging.getLogger("fault_trials")

# --------------------------------------------------------------------------- what is compared
# Columns whose values legitimately differ between two correct runs over the same data.
_EXCLUDED = re.compile(
    r"^(run_id|.*_run_id"  # run ids (ours and MLflow's)
    r"|_?ingested_at|logged_at|created_at|validated_at|computed_at|merged_at|rejected_at|updated_at_run"  # wall-clock times of the run
    r"|(churn|propensity|clv)_model)$"  # registered model name/version: a rerun registers a new version
)
# Append-only run logs in silver/gold: one set of rows per run. A rerun under a fresh run id
# leaves the crashed run's rows (they describe what that run did); under the same run id
# (resume) the run's rows must not be there twice.
LOG_TABLES = {
    "gold.identity_metrics": "run_id",
    "gold.identity_merges": "run_id",
    "gold.clv_params": "run_id",
    "silver.quality_rejects": "run_id",
}
COMPARED_LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Trial:
    """One crash-and-rerun: stages ``first``..``last``, killed at ``fault`` (a CDP_FAULT_POINT spec)
    or after ``delay`` seconds, rerun as ``resume`` (same run id) or ``fresh`` (new run id)."""

    name: str
    first: str
    last: str
    fault: str | None = None
    delay: float | None = None
    seed: int | None = None  # CDP_FAULT_RANDOM_SEED (with probability ``probability``)
    probability: float = 0.05
    rerun: str = "resume"

    def stages(self) -> list[str]:
        return list(STAGES[STAGES.index(self.first) : STAGES.index(self.last) + 1])

    def fired_as_planned(self, fired: str | None) -> bool:
        """Whether the logged fault (``point`` or ``point:detail``) is the one ``fault`` asks for."""
        if not self.fault or not fired:
            return False
        point, _, detail = self.fault.partition("#")[0].partition(":")
        fired_point, _, fired_detail = fired.partition(":")
        return fired_point == point and (not detail or fired_detail == detail)

    def describe(self) -> str:
        if self.fault:
            return self.fault
        if self.seed is not None:
            return f"random points seed={self.seed} p={self.probability}"
        return f"SIGKILL after {self.delay:.0f}s"


@dataclass
class RunOutcome:
    exit_code: int
    seconds: float
    killed_by_timer: bool
    stage_reached: str | None
    fault_fired: str | None
    log_path: str


@dataclass
class TrialResult:
    trial: Trial
    crashed: RunOutcome
    rerun: RunOutcome | None = None
    corrupt_after_crash: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    differences: dict[str, str] = field(default_factory=dict)
    tables_compared: int = 0
    duplicate_ingestion_log_rows: int = 0
    bronze_counts_equal: bool = False
    orphan_files: int = 0  # data files written but never committed (vacuum removes them)

    @property
    def killed(self) -> bool:
        return self.crashed.exit_code != 0

    @property
    def equal(self) -> bool:
        return (
            self.rerun is not None
            and self.rerun.exit_code == 0
            and not self.corrupt
            and not self.corrupt_after_crash
            and not self.differences
            and self.bronze_counts_equal
            and self.duplicate_ingestion_log_rows == 0
        )

    def line(self) -> str:
        status = "EQUAL" if self.equal else "DIFFERENT"
        kill = self.crashed.fault_fired or ("timer" if self.crashed.killed_by_timer else f"not killed (exit {self.crashed.exit_code})")
        rerun_code = self.rerun.exit_code if self.rerun else None
        text = (
            f"{self.trial.name:<28} stages {self.trial.first}..{self.trial.last:<8} reached={self.crashed.stage_reached or '-':<8} "
            f"kill={kill} rerun={self.trial.rerun}(exit {rerun_code}) corrupt={len(self.corrupt_after_crash) + len(self.corrupt)} "
            f"tables={self.tables_compared} orphans={self.orphan_files} {status}"
        )
        if self.differences:
            text += "\n    " + "\n    ".join(f"{t}: {d}" for t, d in sorted(self.differences.items()))
        return text


# --------------------------------------------------------------------------- workspace
@dataclass(frozen=True)
class Workspace:
    root: Path
    run_date: date

    @property
    def landing(self) -> Path:
        return self.root / "data" / "landing"

    @property
    def code(self) -> Path:
        """The copy of ``cdp_spark`` and ``conf`` every run of this workspace imports (pinned code)."""
        return self.root / "code"

    @property
    def secret(self) -> Path:
        return self.root / "secret.key"

    def snapshot(self, name: str) -> Path:
        return self.root / "baseline" / "snapshots" / name

    @property
    def baseline_state(self) -> Path:
        return self.root / "baseline" / "state"


def prepare_workspace(root: Path, *, customers: int = 200, seed: int = 11, days: int = 200) -> Workspace:
    """Generate the landing data (recent dates, so anonymous ids are within their TTL) once per workspace."""
    from cdp_spark.synthetic import generate

    root.mkdir(parents=True, exist_ok=True)
    meta = root / "workspace.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        return Workspace(root, date.fromisoformat(saved["run_date"]))
    # Pin the code: the baseline and every trial must run the same code, even while the checkout changes.
    for part in ("cdp_spark", "conf"):
        shutil.copytree(ROOT / part, root / "code" / part, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    run_date = date.today()
    start = run_date - timedelta(days=days)
    generate(root / "data", customers=customers, seed=seed, days=days, start=start.isoformat(), overwrite=True)
    meta.write_text(json.dumps({"run_date": run_date.isoformat(), "customers": customers, "seed": seed, "days": days}))
    return Workspace(root, run_date)


def write_config(ws: Workspace, state: Path) -> Path:
    """A config whose lakehouse, MLflow store and exports are under ``state``; landing and secret are shared."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / "cdp.yaml"
    path.write_text(
        f"include: [{ws.code / 'conf' / 'local.yaml'}]\n"
        "paths:\n"
        f"  landing: {ws.landing}\n"
        f"  lakehouse: {state / 'lakehouse'}\n"
        f"  checkpoints: {state / 'checkpoints'}\n"
        f"  exports: {state / 'exports'}\n"
        f"  reports: {state / 'reports'}\n"
        f"  mlflow_tracking_uri: sqlite:///{state / 'mlflow.db'}\n"
        f"  mlflow_artifacts: {state / 'mlartifacts'}\n"
        "spark: {master: 'local[2]', shuffle_partitions: 2, driver_memory: 2g}\n"
        f"silver: {{local_secret_file: {ws.secret}}}\n"
        "models: {gbt_max_iter: 3}\n"
    )
    return path


def _copy_state(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("cdp.yaml", "checkpoints", "*.log"))


# --------------------------------------------------------------------------- running the CLI
def _child_env(code: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_FAULT_")}
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the run's process group (the JVM) and wait until it is gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    log.warning("process group %d still has (zombie?) members after SIGKILL", pgid)


_STAGE_LINE = re.compile(r"stage (\w+) starting")
_FAULT_LINE = re.compile(r"fault point (\S+) reached")


def run_cli(
    ws: Workspace, config: Path, *, run_id: str, stages: Sequence[str], log_path: Path,
    env: dict[str, str] | None = None, kill_after: float | None = None,
) -> RunOutcome:
    """``python -m cdp_spark.cli run`` (the workspace's pinned code) in its own process group;
    SIGKILLed after ``kill_after`` seconds if set."""
    run_date = ws.run_date
    cmd = [sys.executable, "-m", "cdp_spark.cli", "run", "--config", str(config), "--run-id", run_id, "--run-date", run_date.isoformat()]
    if list(stages) != list(STAGES):
        for stage in stages:
            cmd += ["--stage", stage]
    started = time.monotonic()
    killed = False
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ws.code, env=_child_env(ws.code, env or {}), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        timeout = RUN_TIMEOUT_SECONDS
        if kill_after is not None:  # the timer starts when the first stage does (JVM start-up times vary a lot)
            first = f"stage {stages[0]} starting"
            while proc.poll() is None and first not in log_path.read_text(errors="replace"):
                time.sleep(0.5)
            timeout = kill_after
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = kill_after is not None
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        _kill_group(proc.pid)
    text = log_path.read_text(errors="replace")
    stages_seen = _STAGE_LINE.findall(text)
    fault = _FAULT_LINE.findall(text)
    return RunOutcome(code, round(time.monotonic() - started, 1), killed, stages_seen[-1] if stages_seen else None, fault[-1] if fault else None, str(log_path))


# --------------------------------------------------------------------------- baseline
def _after(stage: str) -> str:
    """Name of the snapshot holding the clean state right after ``stage``."""
    following = STAGES.index(stage) + 1
    return STAGES[following] if following < len(STAGES) else "end"


def _stage_seconds(log_path: Path, stage: str) -> float | None:
    """The stage's own duration as the pipeline logged it (``stage S done ... seconds=N``)."""
    found = re.findall(rf"stage {stage} done .* seconds=([0-9.]+)", log_path.read_text(errors="replace"))
    return float(found[-1]) if found else None


def build_baseline(ws: Workspace, *, last: str = "score") -> dict[str, float]:
    """Run the clean pipeline stage by stage up to ``last`` (continuing a baseline kept from earlier),
    snapshotting the state before each stage and after the last; returns seconds per stage."""
    timings_file = ws.root / "baseline" / "timings.json"
    timings: dict[str, float] = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    state = ws.baseline_state
    config = write_config(ws, state)
    for stage in STAGES[: STAGES.index(last) + 1]:
        if stage in timings:
            continue
        _copy_state(state, ws.snapshot(stage))
        outcome = run_cli(ws, config, run_id=BASELINE_RUN_ID, stages=[stage], log_path=state / f"baseline-{stage}.log")
        if outcome.exit_code != 0:
            raise RuntimeError(f"clean baseline stage {stage} failed (exit {outcome.exit_code}); see {outcome.log_path}")
        _copy_state(state, ws.snapshot(_after(stage)))
        timings[stage] = _stage_seconds(Path(outcome.log_path), stage) or outcome.seconds
        timings_file.write_text(json.dumps(timings))
        log.info("baseline stage %s: %.0fs", stage, outcome.seconds)
    return timings


def expected_snapshot(ws: Workspace, last: str) -> Path:
    """The clean state right after stage ``last``."""
    return ws.snapshot(_after(last))


# --------------------------------------------------------------------------- reading and comparing
def table_dirs(lakehouse: Path) -> dict[str, Path]:
    """``layer.name`` -> directory of every Delta table (a directory with a ``_delta_log``)."""
    out = {}
    for log_dir in sorted(lakehouse.glob("*/*/_delta_log")):
        table = log_dir.parent
        out[f"{table.parent.name}.{table.name}"] = table
    return out


def read_table(path: Path):
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pyarrow_table()


def corrupt_tables(lakehouse: Path) -> list[str]:
    """Tables whose Delta log or data files cannot be read, as ``name: error``."""
    bad = []
    for name, path in table_dirs(lakehouse).items():
        try:
            read_table(path)
        except Exception as exc:  # any failure to read is what we count
            bad.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return bad


def orphan_files(lakehouse: Path) -> int:
    """Parquet files in table directories that no Delta log entry ever added."""
    orphans = 0
    for path in table_dirs(lakehouse).values():
        added = set()
        for entry in (path / "_delta_log").glob("*.json"):
            for line in entry.read_text().splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    added.add(unquote(action["add"]["path"]))
        for f in path.rglob("*.parquet"):
            rel = f.relative_to(path).as_posix()
            if not rel.startswith(("_delta_log", "_staging")) and rel not in added:
                orphans += 1
    return orphans


def ingestion_times(lakehouse: Path) -> frozenset[datetime]:
    """The bronze ``_ingested_at`` values of a lakehouse: silver falls back to them for sources without an
    event time (``updated_at``, ``seen_at``), so they are wall-clock times of the run that ingested."""
    times: set[datetime] = set()
    for name, path in table_dirs(lakehouse).items():
        if name.startswith("bronze."):
            table = read_table(path)
            if "_ingested_at" in table.column_names:
                times.update(t for t in table.column("_ingested_at").unique().to_pylist() if t is not None)
    return frozenset(times)


def _norm(value: Any, replacements: Sequence[tuple[str, str]], run_times: frozenset[datetime] = frozenset()) -> Any:
    if isinstance(value, datetime) and value in run_times:
        return "<ingested_at>"
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}") if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(v, replacements, run_times)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v, replacements, run_times) for v in value)
    return value


def table_rows(
    path: Path, *, replacements: Sequence[tuple[str, str]] = (), run_times: frozenset[datetime] = frozenset(),
    drop_run_ids: frozenset[str] = frozenset(), run_col: str | None = None,
) -> tuple[list[str], Counter]:
    """(compared columns, multiset of normalized rows) of a table; rows of ``drop_run_ids`` (in ``run_col``) left out."""
    table = read_table(path)
    columns = sorted(c for c in table.column_names if not _EXCLUDED.match(c))
    rows = table.to_pylist()
    if run_col and drop_run_ids:
        rows = [r for r in rows if r.get(run_col) not in drop_run_ids]
    return columns, Counter(tuple(_norm(r[c], replacements, run_times) for c in columns) for r in rows)


def compare_lakehouses(
    expected_state: Path, actual_state: Path, *, layers: Sequence[str] = COMPARED_LAYERS, crashed_run_ids: frozenset[str] = frozenset()
) -> tuple[int, dict[str, str]]:
    """(tables compared, table -> what differs) between two states' lakehouses, as row multisets.

    ``crashed_run_ids``: runs that were abandoned (a rerun took a fresh id); their rows in the
    append-only run logs are left out.
    """
    expected = {k: v for k, v in table_dirs(expected_state / "lakehouse").items() if k.split(".")[0] in layers}
    actual = {k: v for k, v in table_dirs(actual_state / "lakehouse").items() if k.split(".")[0] in layers}
    e_times, a_times = ingestion_times(expected_state / "lakehouse"), ingestion_times(actual_state / "lakehouse")
    differences: dict[str, str] = {}
    for name in sorted(set(expected) ^ set(actual)):
        differences[name] = "only in the clean run" if name in expected else "only in the trial"
    for name in sorted(set(expected) & set(actual)):
        run_col = LOG_TABLES.get(name)
        e_cols, e_rows = table_rows(expected[name], replacements=[(str(expected_state), "<state>")], run_times=e_times)
        a_cols, a_rows = table_rows(
            actual[name], replacements=[(str(actual_state), "<state>")], run_times=a_times, drop_run_ids=crashed_run_ids, run_col=run_col
        )
        if e_cols != a_cols:
            differences[name] = f"columns differ: clean {e_cols} trial {a_cols}"
        elif e_rows != a_rows:
            missing, extra = e_rows - a_rows, a_rows - e_rows
            sample = next(iter(extra or missing))
            differences[name] = (
                f"{sum(missing.values())} clean row(s) missing, {sum(extra.values())} extra row(s) "
                f"(of {sum(e_rows.values())}); e.g. {'extra' if extra else 'missing'} {dict(zip(e_cols, sample))}"
            )
    return len(set(expected) & set(actual)), differences


def duplicate_ingestion_log_rows(lakehouse: Path) -> int:
    """Rows of ops.ingestion_log repeating a (source, file, content hash, status, batch)."""
    path = lakehouse / "ops" / "ingestion_log"
    if not path.exists():
        return 0
    rows = read_table(path).select(["source", "file_path", "content_hash", "status", "batch"]).to_pylist()
    counts = Counter(tuple(r.values()) for r in rows)
    return sum(n - 1 for n in counts.values() if n > 1)


def bronze_counts(lakehouse: Path) -> dict[str, int]:
    return {name: read_table(path).num_rows for name, path in table_dirs(lakehouse).items() if name.startswith("bronze.")}


# --------------------------------------------------------------------------- one trial
def run_trial(ws: Workspace, trial: Trial) -> TrialResult:
    """Crash, check for corruption, rerun, compare with the clean state after ``trial.last``."""
    state = ws.root / "trials" / trial.name
    _copy_state(ws.snapshot(trial.first), state)
    config = write_config(ws, state)
    run_id = f"trial-{trial.name}"
    env = {}
    if trial.fault:
        env["CDP_FAULT_POINT"] = trial.fault
    if trial.seed is not None:
        env["CDP_FAULT_RANDOM_SEED"] = str(trial.seed)
        env["CDP_FAULT_PROBABILITY"] = str(trial.probability)
    crashed = run_cli(ws, config, run_id=run_id, stages=trial.stages(), log_path=state / "crashed.log", env=env, kill_after=trial.delay)
    result = TrialResult(trial, crashed)
    lakehouse = state / "lakehouse"
    result.corrupt_after_crash = corrupt_tables(lakehouse)
    rerun_id = run_id if trial.rerun == "resume" else f"{run_id}-fresh"
    result.rerun = run_cli(ws, config, run_id=rerun_id, stages=trial.stages(), log_path=state / "rerun.log")
    result.corrupt = corrupt_tables(lakehouse)
    expected = expected_snapshot(ws, trial.last)
    crashed_ids = frozenset({run_id}) if rerun_id != run_id else frozenset()
    result.tables_compared, result.differences = compare_lakehouses(expected, state, crashed_run_ids=crashed_ids)
    result.duplicate_ingestion_log_rows = duplicate_ingestion_log_rows(lakehouse)
    result.bronze_counts_equal = bronze_counts(lakehouse) == bronze_counts(expected / "lakehouse")
    result.orphan_files = orphan_files(lakehouse)
    log.info("%s", result.line())
    return result


# --------------------------------------------------------------------------- trial plans
DEFAULT_TRIALS = (
    Trial("silver-between-tables", "silver", "silver", fault="silver.between_tables#2", rerun="resume"),
    Trial("identity-before-registry", "identity", "identity", fault="identity.after_map_before_registry", rerun="fresh"),
    Trial("identity-files-not-committed", "identity", "identity", fault="lake.after_files_before_commit:gold.identity_nodes", rerun="resume"),
)

# (first, last, fault spec, rerun) per stage; timed kills fill up the plan.
_NAMED = (  # interleaved so that any prefix of the plan spreads over the stages
    ("identity", "identity", "identity.after_map_before_registry", "resume"),
    ("identity", "gold", "gold.after_profile", "fresh"),
    ("silver", "silver", "silver.between_tables#1", "fresh"),
    ("score", "score", "score.before_upsert", "resume"),
    ("train", "train", "lake.after_commit:gold.clv_params", "resume"),
    ("bronze", "bronze", "bronze.after_data_commit#3", "fresh"),
    ("identity", "identity", "lake.after_commit:gold.identity_metrics", "resume"),
    ("gold", "gold", "lake.after_files_before_commit:gold.segment_membership", "resume"),
    ("silver", "silver", "lake.after_files_before_commit:silver.identifiers", "resume"),
    ("score", "score", "lake.after_commit:gold.customer_scores", "fresh"),
    ("train", "train", "lake.after_files_before_commit:gold.clv_params", "fresh"),
    ("bronze", "bronze", "bronze.after_plan", "resume"),
    ("identity", "identity", "lake.after_commit:gold.customer_id_registry", "fresh"),
    ("gold", "gold", "lake.after_commit:gold.export_state", "fresh"),
    ("bronze", "bronze", "lake.after_files_before_commit:bronze.web_events", "resume"),
    ("bronze", "silver", "lake.after_files_before_commit:ops.run_log#1", "resume"),
)
# Timed kills: (stage, rerun). Identity and train rerun under a fresh id here: their resume path is
# covered by named trials, and their append-only logs make a resume's result depend on where the kill fell.
_TIMED = (("identity", "fresh"), ("gold", "resume"), ("train", "fresh"), ("score", "resume"), ("bronze", "resume"), ("silver", "fresh"))


def _slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", spec.lower()).strip("-")


def trial_plan(n: int, *, seed: int, timings: dict[str, float]) -> list[Trial]:
    """``n`` trials: named points first, then SIGKILLs after a seeded random delay, stage by stage.

    A timed kill lands uniformly in [0.1, 0.9] x the stage's clean duration after the stage starts.
    """
    rng = random.Random(seed)
    trials = [
        Trial(f"{i:02d}-{_slug(fault)}", first, last, fault=fault, rerun=rerun)
        for i, (first, last, fault, rerun) in enumerate(_NAMED[:n])
    ]
    while len(trials) < n:
        i = len(trials)
        stage, rerun = _TIMED[(i - len(_NAMED)) % len(_TIMED)]
        delay = rng.uniform(0.1, 0.9) * timings.get(stage, 60.0)
        trials.append(Trial(f"{i:02d}-timer-{stage}", stage, stage, delay=round(delay, 1), rerun=rerun))
    return trials


def run_trials(ws: Workspace, trials: Sequence[Trial]) -> list[TrialResult]:
    last = max((t.last for t in trials), key=STAGES.index)
    build_baseline(ws, last=last)
    return [run_trial(ws, t) for t in trials]


def summary(results: Sequence[TrialResult]) -> str:
    per_stage = Counter(r.crashed.stage_reached or "-" for r in results if r.killed)
    corrupt = sum(len(r.corrupt) + len(r.corrupt_after_crash) for r in results)
    equal = sum(r.equal for r in results)
    lines = [r.line() for r in results]
    lines.append(
        f"trials={len(results)} killed={sum(r.killed for r in results)} kill points per stage={dict(per_stage)} "
        f"corrupt tables={corrupt} equal to the clean run={equal}/{len(results)}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workdir", default="/tmp/cdp-fault-trials")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--only", help="comma list of trial names (prefixes) to run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    ws = prepare_workspace(Path(args.workdir), customers=args.customers, seed=args.seed)
    timings = build_baseline(ws, last="score")
    trials = trial_plan(args.trials, seed=args.seed, timings=timings)
    if args.only:
        wanted = tuple(args.only.split(","))
        trials = [t for t in trials if t.name.startswith(wanted)]
    results = []
    for trial in trials:
        results.append(run_trial(ws, trial))
        if args.json:
            Path(args.json).write_text(json.dumps([asdict(r) | {"equal": r.equal} for r in results], default=str, indent=1))
    print(summary(results))
    return 0 if all(r.equal for r in results) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # deltalake 1.6.6 aborts (SIGABRT, exit 134) in its runtime teardown at a normal exit
