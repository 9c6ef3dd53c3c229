"""Benchmark the whole pipeline at several scales, an incremental run and the baselines, in one command.

    .venv/bin/python scripts/bench.py
    .venv/bin/python scripts/bench.py --scales 2000 20000 200000 1000000 --cc-edges 1000000 10000000
    .venv/bin/python scripts/bench.py --scales 2000 20000 --no-baselines --markdown /tmp/b.md --out /tmp/bench
    .venv/bin/python scripts/bench.py --from-json bench-results/bench.json --notes conditions.md --markdown docs/benchmarks.md
    .venv/bin/python scripts/bench.py --scales 150 300 --days 60 --no-baselines --warmup-customers 0 --set spark.shuffle_partitions=2 --set models.gbt_max_iter=5 --out /tmp/bench --no-markdown

For every scale (customers, ascending) the synthetic generator writes ``--days`` days of landing data
(in a child process, so its memory does not count as the driver's), a config including
``conf/local.yaml`` points at a fresh lakehouse under ``<out>/scale-<N>/``, and the six stages run in
order with ``run_stage`` on one SparkSession reused across scales. Per stage: wall seconds, rows
in/out, rows in per second, Delta files added/removed (the ``add``/``remove`` actions of the commits
that appeared in every table's ``_delta_log`` during the stage), the Python driver's and the JVM's
peak RSS during the stage (``VmHWM``, reset before the stage through ``/proc/<pid>/clear_refs``), the
JVM heap in use after a full GC, and the executors' peak memory metrics from Spark's status REST API
once per run (local mode: the driver is the executor).

Incremental: after the largest scale, ``--increment-fraction`` of its customers is generated with
another seed, its landing files are copied into the same landing folders under an ``inc<seed>_``
name prefix (sequential ids -- customer, order, legacy and ticket numbers -- get a leading 9 instead
of 0 so they are new records, not updates of the full run's ones), and all stages run again.

Baselines: bronze against a plain ``spark.read`` + ``write.parquet`` of the same landing files (every
scale), then, with the pipeline's Spark stopped (one Spark process at a time),
``scripts/bench_components.py`` and ``scripts/bench_clv.py`` as subprocesses; their JSON is embedded.

Every measured run starts with the previous run's cached DataFrames/RDDs unpersisted (as a new
process would); how many were still held after each stage is recorded (``persisted_rdds``).
``--set KEY=VALUE`` overrides any config key for every scale (``spark.conf.<key>=...`` for Spark
settings). Label windows shorter than the defaults are used when ``--days`` is too short for them.

Writes ``<out>/bench.json``, prints a table, and writes the markdown report (``--markdown``) with
the Targets table; a target this run did not measure says so and carries no figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench")

MB = 1024 * 1024
# Targets (docs/benchmarks.md): the thresholds the measured figures are compared with.
CC_TARGET_EDGES = 10_000_000
CC_MAX_NATIVE_OVER_SCIPY = 20.0
PIPELINE_TARGET_CUSTOMERS = 1_000_000
PIPELINE_TARGET_SECONDS = 20 * 60
GROWTH_SLACK = 1.1  # time(k x data) <= 1.1 k x time: 11x for 10x data
INCREMENT_MAX_SHARE = 0.10
DRIVER_FLAT_MAX_GROWTH = 1.5  # Python driver peak RSS, largest over smallest scale
INCREMENT_ID_PREFIX_DIGIT = "9"
IDENTITY_MIN_PRECISION = 0.995  # pairwise, against the generator's true persons
IDENTITY_MIN_RECALL = 0.98  # pairwise, against the records linkable by identifiers (linkable_group)
ID_MIN_STABILITY = 0.999  # customer IDs kept by the increment for customers it did not touch

# Sequential ids the generator numbers from the same base for every seed: customer (C + 9 digits),
# order (O + 9), legacy (L + 8) and ticket (TK + 8) numbers. Quoted as they are in CSV and JSONL.
_SEQUENTIAL_IDS = re.compile(r'"(C|O)0(\d{8})"|"(L|TK)0(\d{7})"')

_GENERATE_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from cdp_spark.synthetic import generate
kw = json.loads(sys.argv[1])
report = generate(kw.pop("out"), **kw)
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": dict(report.rows), "files": dict(report.files), "seconds": report.seconds, "peak_rss_kb": peak_kb}))
"""


# ---------------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", type=int, nargs="+", default=[2_000, 20_000, 200_000], help="customers per scale")
    p.add_argument("--days", type=int, default=365, help="days of generated history per scale")
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="work directory and bench.json")
    p.add_argument("--markdown", type=Path, default=Path("docs/benchmarks.md"), help="write the markdown report here")
    p.add_argument("--no-markdown", dest="markdown", action="store_const", const=None, help="do not write the markdown report")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True, help="plain Spark, CC and CLV baselines")
    p.add_argument("--incremental", action=argparse.BooleanOptionalAction, default=True, help="1%% increment after the largest scale")
    p.add_argument("--increment-fraction", type=float, default=0.01, help="increment size as a share of the largest scale")
    p.add_argument("--cc-edges", type=int, nargs="+", default=[1_000_000], help="edge counts for scripts/bench_components.py")
    p.add_argument("--cc-results", type=Path, help="embed this scripts/bench_components.py JSON instead of running it again")
    p.add_argument("--clv-sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="customer counts for scripts/bench_clv.py")
    p.add_argument("--clv-results", type=Path, help="embed this scripts/bench_clv.py JSON instead of running it again")
    p.add_argument("--notes", type=Path, help="markdown file appended to the report as 'Conditions of this run'")
    p.add_argument("--from-json", type=Path, help="run nothing: write the markdown of this earlier bench.json (with --notes, if given)")
    p.add_argument("--warmup-customers", type=int, default=300, help="untimed pipeline run first (JIT, class loading); 0 = none")
    p.add_argument(
        "--until", choices=("bronze", "silver", "identity", "gold", "train", "score"), default="score",
        help="run the stages up to and including this one (e.g. gold: no model training at a scale that only measures the lakehouse)",
    )
    p.add_argument("--keep-data", action="store_true", help="keep each scale's landing data and lakehouse under --out")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override for every scale (repeatable), e.g. spark.shuffle_partitions=2 models.gbt_max_iter=10",
    )
    args = p.parse_args(argv)
    try:
        args.config_overrides = parse_overrides(args.overrides)
    except ValueError as err:
        p.error(str(err))
    args.scales = sorted(set(args.scales))
    if min(args.scales) < 1 or args.days < 30:
        p.error("--scales must be positive and --days at least 30 (the generator's minimum)")
    return args


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``a.b.c=value`` items as a nested mapping (values parsed as YAML); ``spark.conf.<key>`` keeps the dotted key."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. spark.shuffle_partitions=2")
        parts = key.strip().split(".", 2) if key.startswith("spark.conf.") else key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = raw if key.startswith("spark.conf.") else yaml.safe_load(raw)  # Spark settings are strings
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ------------------------------------------------------------------------------------- machine info
def total_ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "total_ram_bytes": total_ram_bytes(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def spark_info(spark: Any, cfg: Any) -> dict[str, Any]:
    from cdp_spark.ops import lake_for

    jvm = spark.sparkContext._jvm
    return {
        "spark": spark.version,
        "java": jvm.java.lang.System.getProperty("java.version"),
        "spark_master": spark.sparkContext.master,
        "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "driver_memory": spark.sparkContext.getConf().get("spark.driver.memory", None),
        "storage_engine": lake_for(spark, cfg).engine_name,
    }


# ------------------------------------------------------------------------------------------- data
def generate_data(out_dir: Path, customers: int, seed: int, days: int, start: str) -> dict[str, Any]:
    """Run the synthetic generator in a child process; wall seconds, rows per source, child peak RSS."""
    kwargs = {"out": str(out_dir), "customers": customers, "seed": seed, "days": days, "start": start}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _GENERATE_CHILD, json.dumps(kwargs), str(ROOT)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"generate customers={customers} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "customers": customers,
        "seed": seed,
        "days": days,
        "start": start,
        "seconds": seconds,
        "generator_seconds": report["seconds"],
        "rows": report["rows"],
        "landing_rows": sum(report["rows"].values()),
        "landing_bytes": dir_bytes(out_dir / "landing"),
        "peak_rss_bytes": report["peak_rss_kb"] * 1024,
    }


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def model_windows(days: int) -> dict[str, int]:
    """Label windows that fit the history: the defaults (90/30 days) from about 360 days on.

    Training needs a validation cutoff ``churn_days`` before the last order and a training cutoff
    another window earlier, so short histories get proportionally shorter windows.
    """
    return {"churn_days": max(7, min(90, days // 4)), "propensity_days": max(7, min(30, days // 8))}


def write_config(work: Path, landing: Path, days: int, overrides: dict[str, Any]) -> Path:
    """A YAML including conf/local.yaml with every path under ``work`` (the pattern of tests/conftest.py)."""
    data = {
        "include": [str(ROOT / "conf" / "local.yaml")],
        "paths": {
            "landing": str(landing),
            "lakehouse": str(work / "lakehouse"),
            "checkpoints": str(work / "checkpoints"),
            "exports": str(work / "exports"),
            "reports": str(work / "reports"),
            "mlflow_tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
            "mlflow_artifacts": str(work / "mlartifacts"),
        },
        # the status REST API (executor peak memory) is served by the UI server
        "spark": {"conf": {"spark.ui.enabled": "true", "spark.sql.warehouse.dir": str(work.parent / "spark-warehouse")}},
        "silver": {"local_secret_file": str(work / "secret.key")},
        "models": model_windows(days),
    }
    path = work / "cdp.yaml"
    path.write_text(yaml.safe_dump(deep_merge(data, overrides), sort_keys=False))
    return path


def rewrite_ids(text: str) -> str:
    """Sequential ids with a leading 9 instead of 0 (C000100013 -> C900100013): new records, same shape."""

    def repl(m: re.Match[str]) -> str:
        prefix, digits = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return f'"{prefix}{INCREMENT_ID_PREFIX_DIGIT}{digits}"'

    return _SEQUENTIAL_IDS.sub(repl, text)


def add_increment(landing: Path, work: Path, customers: int, seed: int, days: int, start: str) -> dict[str, Any]:
    """Generate ``customers`` more people and copy their landing files into ``landing`` as new files."""
    gen = generate_data(work, customers, seed, days, start)
    copied, size = 0, 0
    for src in sorted((work / "landing").rglob("*")):
        if not src.is_file():
            continue
        dest = landing / src.parent.relative_to(work / "landing") / f"inc{seed}_{src.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix in (".csv", ".jsonl"):
            dest.write_text(rewrite_ids(src.read_text(encoding="utf-8")), encoding="utf-8")
        else:
            shutil.copyfile(src, dest)
        copied += 1
        size += dest.stat().st_size
    return {**gen, "files_copied": copied, "bytes_copied": size}


# ---------------------------------------------------------------------------------------- probes
class DeltaCommits:
    """Counts the ``add``/``remove`` actions of Delta commits that appeared since the last scan."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.seen: set[Path] = set()

    def scan(self) -> dict[str, Any]:
        adds = removes = commits = 0
        tables: set[str] = set()
        for log_dir in sorted(self.root.rglob("_delta_log")) if self.root.exists() else []:
            for commit in sorted(log_dir.glob("[0-9]*.json")):
                if commit in self.seen:
                    continue
                self.seen.add(commit)
                a, r = count_actions(commit)
                adds, removes, commits = adds + a, removes + r, commits + 1
                tables.add(str(log_dir.parent.relative_to(self.root)))
        return {"files_added": adds, "files_removed": removes, "commits": commits, "tables": sorted(tables)}


def count_actions(commit: Path) -> tuple[int, int]:
    adds = removes = 0
    for line in commit.read_text(encoding="utf-8").splitlines():
        if line.strip():
            action = json.loads(line)
            adds += "add" in action
            removes += "remove" in action
    return adds, removes


def _vm_hwm_bytes(pid: int | str) -> int | None:
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _reset_hwm(pid: int | str) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class MemoryProbe:
    """Peak RSS of the Python driver and of the JVM during a stage, and the JVM heap after a GC."""

    def __init__(self, spark: Any) -> None:
        self.jvm = spark.sparkContext._jvm
        self.jsc = spark.sparkContext._jsc
        self.jvm_pid = int(self.jvm.java.lang.ProcessHandle.current().pid())
        self.reset_ok = False

    def reset(self) -> None:
        self.reset_ok = _reset_hwm("self") & _reset_hwm(self.jvm_pid)

    def sample(self) -> dict[str, Any]:
        self.jvm.java.lang.System.gc()
        heap = self.jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
        return {
            "python_peak_rss_bytes": _vm_hwm_bytes("self"),
            "python_ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "jvm_peak_rss_bytes": _vm_hwm_bytes(self.jvm_pid),
            "jvm_heap_used_after_gc_bytes": int(heap.getUsed()),
            "jvm_heap_max_bytes": int(heap.getMax()),
            "persisted_rdds": int(self.jsc.getPersistentRDDs().size()),  # cached DataFrames still held after the stage
            "peak_is_per_stage": self.reset_ok,
        }


def release_caches(spark: Any) -> int:
    """Unpersist every cached DataFrame/RDD the previous run left behind; how many RDDs were held.

    Each measured run starts as a fresh ``cdp run`` process would: without the earlier runs' caches
    (their count is recorded per stage as ``persisted_rdds``).
    """
    jsc = spark.sparkContext._jsc
    held = int(jsc.getPersistentRDDs().size())
    spark.catalog.clearCache()
    for rdd in list(jsc.getPersistentRDDs().values()):
        rdd.unpersist(True)
    return held


def executor_memory(spark: Any) -> dict[str, Any] | None:
    """``peakMemoryMetrics`` of every executor from Spark's status REST API; None without a UI."""
    url = spark.sparkContext.uiWebUrl
    if not url:
        return None
    api = f"{url.rstrip('/')}/api/v1/applications/{spark.sparkContext.applicationId}/executors"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(api, timeout=10) as resp:
            executors = json.load(resp)
    except (OSError, ValueError) as err:
        log.warning("executor metrics unavailable from %s: %s", api, err)
        return None
    return {
        e["id"]: {"peakMemoryMetrics": e.get("peakMemoryMetrics"), "memoryUsed": e.get("memoryUsed"), "maxMemory": e.get("maxMemory")}
        for e in executors
    }


# --------------------------------------------------------------------------------------- pipeline
def stage_record(result: Any, files: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
    seconds = float(result.seconds)
    return {
        "stage": result.stage,
        "status": result.status,
        "seconds": seconds,
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_per_s": result.rows_in / seconds if result.rows_in and seconds > 0 else None,
        "error": result.error,
        **files,
        **memory,
    }


def run_stages(spark: Any, cfg: Any, label: str, commits: DeltaCommits, probe: MemoryProbe, until: str = "score") -> dict[str, Any]:
    """The stages in order up to ``until`` (stopping at a failure, like run_pipeline); one record per stage."""
    from cdp_spark.pipeline import STAGES, new_run_id, run_stage

    run_id = new_run_id()
    released = release_caches(spark)
    commits.scan()  # commits made before this run are not counted
    stages: list[dict[str, Any]] = []
    for stage in STAGES[: STAGES.index(until) + 1]:
        if stages and stages[-1]["status"] != "succeeded":
            stages.append({"stage": stage, "status": "skipped", "seconds": None})
            continue
        probe.reset()
        result = run_stage(spark, cfg, stage, run_id=run_id)
        stages.append(stage_record(result, commits.scan(), probe.sample()))
        print(f"  {label:>22} {result.line()}", flush=True)
    return {
        "run_id": run_id,
        "persisted_rdds_released_before": released,
        "stages": stages,
        "total_seconds": sum(s["seconds"] or 0.0 for s in stages),
        "succeeded": all(s["status"] == "succeeded" for s in stages),
        "executors": executor_memory(spark),
    }


def plain_read_baseline(spark: Any, cfg: Any, dest: Path) -> dict[str, Any]:
    """Each source's landing files through a plain ``spark.read`` + ``write.parquet`` (what bronze does, minus bronze)."""
    from pyspark.errors import AnalysisException

    per_source: dict[str, float | None] = {}
    for src in cfg.sources:
        t0 = time.perf_counter()
        try:
            df = spark.read.format(src.format).options(**src.options).load(f"{cfg.paths.landing}/{src.path}")
            df.write.mode("overwrite").parquet(str(dest / src.name))
            per_source[src.name] = time.perf_counter() - t0
        except AnalysisException as err:  # a source without files at this scale
            log.info("plain read of %s skipped: %s", src.name, str(err).splitlines()[0])
            per_source[src.name] = None
    shutil.rmtree(dest, ignore_errors=True)
    return {"seconds": sum(v for v in per_source.values() if v is not None), "per_source": per_source}


def bench_scale(spark_holder: dict[str, Any], args: argparse.Namespace, customers: int, start: str, *, largest: bool) -> dict[str, Any]:
    """Generate, run every stage, the plain-read baseline and (largest scale) the increment."""
    from cdp_spark.config import load_config
    from cdp_spark.session import build_session

    work = args.out / f"scale-{customers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"scale {customers:,} customers x {args.days} days: generating", flush=True)
    generation = generate_data(work / "data", customers, args.seed, args.days, start)
    cfg = load_config(write_config(work, work / "data" / "landing", args.days, args.config_overrides))
    spark = build_session(cfg)  # one session for all scales: getOrCreate returns the first one
    if "probe" not in spark_holder:
        spark_holder.update(spark=spark, probe=MemoryProbe(spark), info=spark_info(spark, cfg))
    commits = DeltaCommits(cfg.paths.lakehouse)
    windows = {"churn_days": cfg.models.churn_days, "propensity_days": cfg.models.propensity_days}
    out: dict[str, Any] = {"customers": customers, "generation": generation, "model_windows": windows}
    out["full"] = run_stages(spark, cfg, f"{customers:,} full", commits, spark_holder["probe"], args.until)
    out["identity_quality"] = identity_quality(spark, cfg, work / "data" / "truth")
    if args.baselines:
        plain = plain_read_baseline(spark, cfg, work / "plain_read")
        bronze = out["full"]["stages"][0]["seconds"]
        out["bronze_vs_plain"] = {**plain, "bronze_seconds": bronze, "bronze_over_plain": ratio(bronze, plain["seconds"])}
    if largest and args.incremental:
        inc_customers = max(1, round(customers * args.increment_fraction))
        print(f"scale {customers:,}: increment of {inc_customers:,} customers", flush=True)
        increment = add_increment(work / "data" / "landing", work / "increment", inc_customers, args.seed + 1, args.days, start)
        map_version = _identity_map_version(spark, cfg)
        out["incremental"] = {"increment": increment, **run_stages(spark, cfg, f"{customers:,} incremental", commits, spark_holder["probe"], args.until)}
        out["incremental"]["id_stability"] = id_stability_since(spark, cfg, map_version)
    if not args.keep_data:
        shutil.rmtree(work, ignore_errors=True)
    return out


def identity_quality(spark: Any, cfg: Any, truth: Path) -> dict[str, Any] | None:
    """Pairwise precision (true persons) and recall (linkable groups) of gold.identity_map against the generator's truth."""
    from cdp_spark.evaluation import identity_quality as quality_vs_truth
    from cdp_spark.ops import lake_for

    lake = lake_for(spark, cfg)
    if not (truth / "records.parquet").exists() or not lake.exists("gold", "identity_map"):
        return None
    records, identity_map = spark.read.parquet(str(truth / "records.parquet")), lake.read("gold", "identity_map")
    t0 = time.perf_counter()
    out = {**quality_vs_truth(identity_map, records), "seconds": time.perf_counter() - t0}
    print(f"  identity vs truth: precision {out['precision']:.4f}, recall (linkable) {out['recall_linkable']:.4f}", flush=True)
    return out


def _identity_map_version(spark: Any, cfg: Any) -> int | None:
    from cdp_spark.ops import lake_for

    return lake_for(spark, cfg).version("gold", "identity_map")


def id_stability_since(spark: Any, cfg: Any, version: int | None) -> dict[str, Any] | None:
    """customer_uid stability between gold.identity_map at ``version`` (before the increment) and now."""
    from cdp_spark.evaluation import id_stability
    from cdp_spark.ops import lake_for

    if version is None:
        return None
    lake = lake_for(spark, cfg)
    out = id_stability(lake.read("gold", "identity_map", version=version), lake.read("gold", "identity_map"))
    print(f"  customer IDs kept for untouched customers: {out['ids_kept']:,} of {out['ids_compared']:,} ({out['share']:.4%})", flush=True)
    return out


def warm_up(args: argparse.Namespace, start: str) -> dict[str, Any] | None:
    """An untimed run on a small data set so the first measured scale does not pay for JIT and class loading."""
    if args.warmup_customers <= 0:
        return None
    from cdp_spark.config import load_config
    from cdp_spark.pipeline import STAGES, new_run_id, run_stage
    from cdp_spark.session import build_session

    work = args.out / "warmup"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"warm-up: {args.warmup_customers:,} customers (not measured)", flush=True)
    generate_data(work / "data", args.warmup_customers, args.seed + 7, args.days, start)
    cfg = load_config(write_config(work, work / "data" / "landing", args.days, args.config_overrides))
    spark = build_session(cfg)
    run_id, statuses = new_run_id(), {}
    for stage in STAGES:
        statuses[stage] = run_stage(spark, cfg, stage, run_id=run_id).status
    shutil.rmtree(work, ignore_errors=True)
    return {"customers": args.warmup_customers, "statuses": statuses}


# -------------------------------------------------------------------------------------- baselines
def run_baseline_script(script: str, flags: list[str], json_path: Path) -> dict[str, Any]:
    """Run one of the baseline scripts as a subprocess; its JSON, or the error and the log's tail."""
    cmd = [sys.executable, str(ROOT / "scripts" / script), *flags]
    log_path = json_path.with_suffix(".log")
    print(f"baseline: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    t0 = time.perf_counter()
    with log_path.open("w") as log_file:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    out: dict[str, Any] = {"command": cmd, "seconds": time.perf_counter() - t0, "returncode": proc.returncode, "log": str(log_path)}
    if proc.returncode == 0 and json_path.is_file():
        out["result"] = json.loads(json_path.read_text())
    else:
        out["error"] = log_path.read_text()[-2000:]
    return out


def run_cc_baseline(args: argparse.Namespace) -> dict[str, Any]:
    if args.cc_results is not None:  # measured separately (e.g. at 10M edges, where it takes long)
        return {"command": ["reused", str(args.cc_results)], "seconds": 0.0, "returncode": 0, "result": json.loads(args.cc_results.read_text())}
    path = args.out / "bench-cc.json"
    flags = ["--edges", *map(str, args.cc_edges), "--families", "random", "chain", "--json", str(path)]
    return run_baseline_script("bench_components.py", flags, path)


def run_clv_baseline(args: argparse.Namespace) -> dict[str, Any]:
    if args.clv_results is not None:
        return {"command": ["reused", str(args.clv_results)], "seconds": 0.0, "returncode": 0, "result": json.loads(args.clv_results.read_text())}
    path = args.out / "bench-clv.json"
    return run_baseline_script("bench_clv.py", ["--sizes", *map(str, args.clv_sizes), "--out", str(path)], path)


# ------------------------------------------------------------------------------------ derived figures
def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def stage_seconds(run: dict[str, Any]) -> dict[str, float | None]:
    """Seconds of each stage that succeeded (None for a failed or skipped one: no ratio is made of it)."""
    return {s["stage"]: s["seconds"] if s["status"] == "succeeded" else None for s in run["stages"]}


def pipeline_seconds(run: dict[str, Any]) -> float | None:
    return run["total_seconds"] if run["succeeded"] else None


def growth(scales: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-stage and whole-pipeline time ratios between consecutive scales."""
    out = []
    for small, big in zip(scales, scales[1:]):
        a, b = stage_seconds(small["full"]), stage_seconds(big["full"])
        out.append(
            {
                "from": small["customers"],
                "to": big["customers"],
                "data_factor": big["customers"] / small["customers"],
                "stages": {stage: ratio(b[stage], a.get(stage)) for stage in b},
                "generate": ratio(big["generation"]["seconds"], small["generation"]["seconds"]),
                "pipeline": ratio(pipeline_seconds(big["full"]), pipeline_seconds(small["full"])),
            }
        )
    return out


def incremental_ratios(scale: dict[str, Any]) -> dict[str, Any] | None:
    inc = scale.get("incremental")
    if not inc:
        return None
    full, part = stage_seconds(scale["full"]), stage_seconds(inc)
    return {
        "customers": scale["customers"],
        "increment_customers": inc["increment"]["customers"],
        "stages": {stage: {"full": full[stage], "incremental": part[stage], "ratio": ratio(part[stage], full[stage])} for stage in full},
        "pipeline": {"full": pipeline_seconds(scale["full"]), "incremental": pipeline_seconds(inc), "ratio": ratio(pipeline_seconds(inc), pipeline_seconds(scale["full"]))},
    }


def driver_peaks(scale: dict[str, Any]) -> dict[str, int | None]:
    stages = [s for s in scale["full"]["stages"] if s["status"] == "succeeded"]

    def peak(key: str) -> int | None:
        values = [s[key] for s in stages if s.get(key) is not None]
        return max(values) if values else None

    return {k: peak(k) for k in ("python_peak_rss_bytes", "jvm_peak_rss_bytes", "jvm_heap_used_after_gc_bytes")}


# ---------------------------------------------------------------------------------------- targets
def _target(name: str, measured: str | None, met: bool | None, note: str) -> dict[str, Any]:
    status = "not measured" if met is None else ("met" if met else "missed")
    return {"target": name, "measured": measured if met is not None else note, "status": status}


def _cc_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    cc = (result.get("baselines") or {}).get("components") or {}
    return (cc.get("result") or {}).get("summary") or []


def _fmt_x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def cc_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = _cc_rows(result)
    largest = max((r["edges"] for r in rows), default=0)
    if not result["args"]["baselines"]:
        missing = "not measured in this run (baselines off)"
    elif not rows:
        missing = "not measured in this run (scripts/bench_components.py failed)"
    else:
        missing = f"not measured in this run (largest graph {largest:,} edges)"
    at_target = [r for r in rows if r["edges"] == CC_TARGET_EDGES]
    nx = [(r["family"], r["networkx_over_native"]) for r in at_target if r.get("networkx_over_native") is not None]
    sp = [(r["family"], r["native_over_scipy"]) for r in at_target if r.get("native_over_scipy") is not None]
    splink = [  # a Splink run cancelled at its timeout gives a lower bound (">=")
        (r["family"], r["edges"], r.get("splink_over_native") or r.get("splink_over_native_lower_bound"), ">= " if r.get("splink_over_native") is None else "")
        for r in rows
    ]
    splink = [(f, e, v, bound) for f, e, v, bound in splink if v is not None]
    return [
        _target(
            f"native CC at {CC_TARGET_EDGES:,} edges faster than networkx",
            ", ".join(f"{f}: networkx/native {_fmt_x(v)}" for f, v in nx),
            all(v > 1 for _, v in nx) if nx else None,
            missing,
        ),
        _target(
            f"native CC at {CC_TARGET_EDGES:,} edges <= {CC_MAX_NATIVE_OVER_SCIPY:g}x scipy",
            ", ".join(f"{f}: native/scipy {_fmt_x(v)}" for f, v in sp),
            all(v <= CC_MAX_NATIVE_OVER_SCIPY for _, v in sp) if sp else None,
            missing,
        ),
        _target(
            "native CC faster than Splink on every graph measured",
            ", ".join(f"{f} {e:,}: splink/native {bound}{_fmt_x(v)}" for f, e, v, bound in splink),
            all(v > 1 for *_, v in splink) if splink else None,
            missing if not rows else "not measured in this run (no Splink timing)",
        ),
    ]


def pipeline_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    scales = result["scales"]
    largest = scales[-1]["customers"]
    not_measured = f"not measured in this run (largest scale {largest:,})"
    at_target = next((s for s in scales if s["customers"] == PIPELINE_TARGET_CUSTOMERS and s["full"]["succeeded"]), None)
    targets = [
        _target(
            f"whole pipeline at {PIPELINE_TARGET_CUSTOMERS:,} customers within {PIPELINE_TARGET_SECONDS // 60} minutes",
            f"{at_target['full']['total_seconds'] / 60:.1f} min" if at_target else None,
            at_target["full"]["total_seconds"] <= PIPELINE_TARGET_SECONDS if at_target else None,
            not_measured if largest < PIPELINE_TARGET_CUSTOMERS else f"not measured in this run (no {PIPELINE_TARGET_CUSTOMERS:,} scale)",
        )
    ]
    pairs = [g for g in result["growth"] if g["pipeline"] is not None]
    targets.append(
        _target(
            f"time(k x data) <= {GROWTH_SLACK:g}k x time (11x for 10x data), whole pipeline",
            ", ".join(f"{g['from']:,}->{g['to']:,} ({g['data_factor']:g}x data): {_fmt_x(g['pipeline'])}" for g in pairs),
            all(g["pipeline"] <= GROWTH_SLACK * g["data_factor"] for g in pairs) if pairs else None,
            f"not measured in this run (no two scales that both succeeded; largest scale {largest:,})",
        )
    )
    quality = [(s["customers"], s.get("identity_quality")) for s in scales]
    quality = [(c, q) for c, q in quality if q]
    targets.append(
        _target(
            f"identity pairwise precision >= {IDENTITY_MIN_PRECISION} (true persons) and recall >= {IDENTITY_MIN_RECALL} (linkable groups)",
            ", ".join(f"{c:,}: precision {q['precision']:.4f}, recall {q['recall_linkable']:.4f}" for c, q in quality),
            all(q["precision"] >= IDENTITY_MIN_PRECISION and q["recall_linkable"] >= IDENTITY_MIN_RECALL for _, q in quality) if quality else None,
            "not measured in this run (no truth files or no identity_map)",
        )
    )
    stability = (scales[-1].get("incremental") or {}).get("id_stability")
    targets.append(
        _target(
            f"the increment keeps >= {ID_MIN_STABILITY:.1%} of the customer IDs it did not touch",
            f"{stability['ids_kept']:,} of {stability['ids_compared']:,} ({stability['share']:.4%}) at {largest:,} customers" if stability else None,
            stability["share"] >= ID_MIN_STABILITY if stability else None,
            f"not measured in this run (largest scale {largest:,}; incremental off or a run failed)",
        )
    )
    inc = result["incremental"]
    share = inc["pipeline"]["ratio"] if inc else None
    targets.append(
        _target(
            f"a {result['args']['increment_fraction']:.0%} increment <= {INCREMENT_MAX_SHARE:.0%} of a full run",
            f"{share:.1%} of the full run at {inc['customers']:,} customers" if share is not None else None,
            share <= INCREMENT_MAX_SHARE if share is not None else None,
            f"not measured in this run (largest scale {largest:,}; incremental off or a run failed)",
        )
    )
    peaks = [(s["customers"], driver_peaks(s)["python_peak_rss_bytes"]) for s in scales if s["full"]["succeeded"]]
    peaks = [(c, p) for c, p in peaks if p]
    growth_factor = ratio(peaks[-1][1], peaks[0][1]) if len(peaks) >= 2 else None
    targets.append(
        _target(
            f"driver memory flat with data size (Python driver peak RSS, largest/smallest scale <= {DRIVER_FLAT_MAX_GROWTH:g}x)",
            (
                ", ".join(f"{c:,}: {p / MB:.0f} MB" for c, p in peaks) + f" ({_fmt_x(growth_factor)} for {peaks[-1][0] / peaks[0][0]:g}x data)"
                if growth_factor is not None
                else None
            ),
            growth_factor <= DRIVER_FLAT_MAX_GROWTH if growth_factor is not None else None,
            f"not measured in this run (no two scales that both succeeded; largest scale {largest:,})",
        )
    )
    return targets


# ---------------------------------------------------------------------------------------- output
def _num(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def _mb(v: int | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f}"


STAGE_HEADER = ["customers", "stage", "status", "seconds", "rows in", "rows out", "rows in/s", "Delta files added", "Python peak MB", "JVM peak RSS MB", "JVM heap after GC MB"]


def stage_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for scale in result["scales"]:
        n = f"{scale['customers']:,}"
        rows.append([n, "(generate)", "", _num(scale["generation"]["seconds"], ".1f"), "", _num(scale["generation"]["landing_rows"]), "", "", "", "", ""])
        for s in scale["full"]["stages"]:
            rows.append(
                [
                    n, s["stage"], s["status"], _num(s["seconds"], ".1f"), _num(s.get("rows_in")), _num(s.get("rows_out")),
                    _num(s.get("rows_per_s")), _num(s.get("files_added")), _mb(s.get("python_peak_rss_bytes")),
                    _mb(s.get("jvm_peak_rss_bytes")), _mb(s.get("jvm_heap_used_after_gc_bytes")),
                ]
            )
        rows.append([n, "**pipeline**", "", _num(scale["full"]["total_seconds"], ".1f"), "", "", "", "", "", "", ""])
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def growth_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    from cdp_spark.pipeline import STAGES

    header = ["stage", *(f"{g['from']:,} -> {g['to']:,} ({g['data_factor']:g}x data)" for g in result["growth"])]
    rows = [[stage, *(_fmt_x(g["stages"].get(stage)) for g in result["growth"])] for stage in STAGES]
    rows.append(["(generate)", *(_fmt_x(g["generate"]) for g in result["growth"])])
    rows.append(["**pipeline**", *(_fmt_x(g["pipeline"]) for g in result["growth"])])
    return header, rows


def incremental_table(inc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["stage", "full s", "incremental s", "incremental / full"]
    rows = [[k, _num(v["full"], ".1f"), _num(v["incremental"], ".1f"), _num(v["ratio"], ".1%")] for k, v in inc["stages"].items()]
    p = inc["pipeline"]
    rows.append(["**pipeline**", _num(p["full"], ".1f"), _num(p["incremental"], ".1f"), _num(p["ratio"], ".1%")])
    return header, rows


def memory_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for scale in result["scales"]:
        peaks = driver_peaks(scale)
        executors = scale["full"].get("executors") or {}
        for exec_id, e in sorted(executors.items()) or [("-", {})]:
            pm = e.get("peakMemoryMetrics") or {}
            rows.append(
                [
                    f"{scale['customers']:,}", _mb(peaks["python_peak_rss_bytes"]), _mb(peaks["jvm_peak_rss_bytes"]),
                    _mb(peaks["jvm_heap_used_after_gc_bytes"]), _num(scale["full"]["stages"][-1].get("persisted_rdds")), exec_id, _mb(pm.get("JVMHeapMemory")), _mb(pm.get("JVMOffHeapMemory")),
                    _mb(pm.get("OnHeapExecutionMemory")), _mb(pm.get("OnHeapStorageMemory")),
                ]
            )
    return rows


MEMORY_HEADER = [
    "customers", "Python driver peak MB", "JVM peak RSS MB", "JVM heap after GC MB", "cached RDDs held after the run", "executor",
    "executor peak JVM heap MB", "peak off-heap MB", "peak execution MB", "peak storage MB",
]


def bronze_vs_plain_rows(result: dict[str, Any]) -> list[list[str]]:
    return [
        [f"{s['customers']:,}", _num(b["bronze_seconds"], ".1f"), _num(b["seconds"], ".1f"), _fmt_x(b["bronze_over_plain"])]
        for s in result["scales"]
        if (b := s.get("bronze_vs_plain"))
    ]


def _baseline(result: dict[str, Any], key: str, script: str) -> tuple[dict[str, Any] | None, str]:
    """A baseline's entry and the line naming its command, or None and why it has no figures."""
    entry = (result.get("baselines") or {}).get(key)
    if not entry:
        return None, "Not run (`--no-baselines`)."
    if "result" not in entry:
        return None, f"`scripts/{script}` failed (exit {entry['returncode']}); see `{entry['log']}`."
    command = entry["command"].split() if isinstance(entry["command"], str) else entry["command"]  # older bench.json: one string
    return entry, f"`{' '.join(Path(c).name if i < 2 else c for i, c in enumerate(command))}`"


def cc_section(result: dict[str, Any]) -> str:
    cc, line = _baseline(result, "components", "bench_components.py")
    if cc is None:
        return line
    timings = [
        [t["family"], f"{t['edges']:,}", t["engine"], _num(t["seconds"], ".2f"), _num(t["components"]), _num(t.get("rounds")), t.get("note") or ""]
        for t in cc["result"]["timings"]
    ]
    summary = [
        [s["family"], f"{s['edges']:,}", _fmt_x(s["native_over_scipy"]), _fmt_x(s["networkx_over_native"]), _fmt_x(s["splink_over_native"]),
         _fmt_x(s["splink_over_native_lower_bound"])]
        for s in cc["result"]["summary"]
    ]
    return (
        line + "\n\n"
        + md_table(["family", "edges", "engine", "seconds", "components", "rounds", "note"], timings)
        + "\n\n"
        + md_table(["family", "edges", "native / scipy", "networkx / native", "Splink / native", "Splink / native (lower bound, timed out)"], summary)
    )


def clv_section(result: dict[str, Any]) -> str:
    clv, line = _baseline(result, "clv", "bench_clv.py")
    if clv is None:
        return line
    rows = [
        [f"{r['customers']:,}", r["model"], r["method"], _num(r.get("seconds"), ".2f"), _num(r.get("tuples")),
         _num(r.get("max_rel_error_vs_truth"), ".2%") if "error" not in r else f"failed: {r['error'][:80]}"]
        for r in clv["result"]["results"]
    ]
    return line + "\n\n" + md_table(["customers", "model", "method", "seconds", "distinct tuples", "max rel. error vs truth"], rows)


def render_markdown(result: dict[str, Any]) -> str:
    m, sp = result["machine"], result.get("spark") or {}
    ram = f"{m['total_ram_bytes'] / 1024**3:.1f} GiB" if m.get("total_ram_bytes") else "-"
    machine = md_table(
        ["item", "value"],
        [
            ["CPUs", str(m["cpu_count"])], ["RAM", ram], ["platform", m["platform"]], ["Python", m["python"]],
            ["Spark", str(sp.get("spark"))], ["Java", str(sp.get("java"))], ["master", str(sp.get("spark_master"))],
            ["shuffle partitions", str(sp.get("shuffle_partitions"))], ["driver memory", str(sp.get("driver_memory"))],
            ["storage engine", str(sp.get("storage_engine"))], ["date (UTC)", m["date"]],
        ],
    )
    args = result["args"]
    warm = result.get("warmup")
    parts = [
        "# Benchmarks",
        "Written by `scripts/bench.py` (do not edit by hand; rerun it). Figures are wall seconds on the machine below, "
        "one run each; a figure marked `-` was not available.",
        "## Machine",
        machine,
        "## Command",
        f"```bash\n{result['command']}\n```",
        f"Each scale: `--days {args['days']}` days of synthetic history, seed {args['seed']}, a fresh lakehouse, stages run with "
        f"`run_stage` on one SparkSession reused across scales (config: `conf/local.yaml` with the paths under `--out`; label windows "
        f"churn/propensity {result['scales'][0]['model_windows']['churn_days']}/{result['scales'][0]['model_windows']['propensity_days']} days). "
        + (f"An untimed warm-up run on {warm['customers']:,} customers came first." if warm else "No warm-up run: the first scale includes JVM warm-up."),
        "## Pipeline: per scale and stage",
        "Rows in/s = rows in / seconds. Delta files added = `add` actions of the stage's commits. Peak RSS is per stage "
        "(VmHWM reset before each stage); JVM heap after a full GC at the end of the stage. Generation runs in a child process.",
        md_table(STAGE_HEADER, stage_rows(result)),
        "### Memory",
        "Per scale, the largest per-stage figure; executor figures are Spark's `peakMemoryMetrics` over the application's "
        "lifetime so far (local mode: the driver is the executor). Cached RDDs held: persisted RDDs still registered after "
        "the last stage; the bench unpersists them before the next run, as a new process would start without them.",
        md_table(MEMORY_HEADER, memory_rows(result)),
        "## Growth",
    ]
    if result["growth"]:
        parts += ["Time at the larger scale / time at the smaller one.", md_table(*growth_table(result))]
    else:
        parts.append(f"Not measured in this run (one scale, largest scale {result['scales'][-1]['customers']:,}).")
    parts.append("## Incremental")
    inc = result["incremental"]
    if inc:
        parts += [
            f"{inc['increment_customers']:,} new customers ({args['increment_fraction']:.0%}) added as new landing files after the full run at "
            f"{inc['customers']:,} customers, then every stage again.",
            md_table(*incremental_table(inc)),
        ]
    else:
        parts.append("Not measured in this run (`--no-incremental`).")
    parts += ["## Identity quality", identity_section(result)]
    parts += ["## Baselines", "### Bronze vs plain Spark read + write.parquet"]
    plain = bronze_vs_plain_rows(result)
    parts.append(
        "The same landing files of every source through `spark.read.format(...).load(...).write.parquet(...)`, run right after "
        "the full pipeline (warm file cache).\n\n" + md_table(["customers", "bronze s", "plain read+write s", "bronze / plain"], plain)
        if plain
        else "Not run (`--no-baselines`)."
    )
    parts += ["### Connected components (`scripts/bench_components.py`)", cc_section(result)]
    parts += ["### CLV fits (`scripts/bench_clv.py`)", clv_section(result)]
    parts += ["## Targets", md_table(["target", "measured", "result"], [[t["target"], t["measured"], t["status"]] for t in result["targets"]])]
    if result.get("notes"):
        parts += ["## Conditions of this run", result["notes"].strip()]
    return "\n\n".join(parts) + "\n"


def identity_section(result: dict[str, Any]) -> str:
    rows = [
        [f"{s['customers']:,}", _num(q["records"]), _num(q["precision"], ".4f"), _num(q["recall_linkable"], ".4f"), _num(q["recall_person"], ".4f")]
        for s in result["scales"]
        if (q := s.get("identity_quality"))
    ]
    text = (
        "`gold.identity_map` after the full run against the generator's truth (`truth/records.parquet`): pairwise precision "
        "against true persons, recall against the groups of records linkable by identifiers and against true persons "
        "(which counts anonymous visits no identifier links).\n\n"
        + md_table(["customers", "records", "precision (persons)", "recall (linkable groups)", "recall (persons)"], rows)
        if rows
        else "Not measured (no truth files)."
    )
    stability = (result["scales"][-1].get("incremental") or {}).get("id_stability")
    if stability:
        text += (
            "\n\nID stability over the increment (`cdp_spark.evaluation.id_stability`: an ID is compared when no new record "
            "joined its customer, kept when all its records still carry it):\n\n"
            + md_table(
                ["IDs compared", "IDs kept", "share kept", "records compared", "records kept", "records touched", "new records", "dropped records"],
                [[_num(stability[k], ".4%" if k == "share" else ",.0f") for k in (
                    "ids_compared", "ids_kept", "share", "records_compared", "records_kept", "records_touched", "new_records", "dropped_records")]],
            )
        )
    return text


def print_summary(result: dict[str, Any]) -> None:
    print("\n" + text_table(STAGE_HEADER, [[c.replace("**", "") for c in r] for r in stage_rows(result)]))
    if result["growth"]:
        header, rows = growth_table(result)
        print("\ngrowth\n" + text_table(header, [[c.replace("**", "") for c in r] for r in rows]))
    if result["incremental"]:
        header, rows = incremental_table(result["incremental"])
        print("\nincremental\n" + text_table(header, [[c.replace("**", "") for c in r] for r in rows]))
    plain = bronze_vs_plain_rows(result)
    if plain:
        print("\nbronze vs plain read\n" + text_table(["customers", "bronze s", "plain s", "bronze/plain"], plain))
    print("\ntargets")
    for t in result["targets"]:
        print(f"  [{t['status']:>12}] {t['target']}: {t['measured']}")


# ------------------------------------------------------------------------------------------ main
def command_line(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python", "scripts/bench.py", *(shlex.quote(str(a)) for a in args)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.from_json is not None:
        if args.markdown is None:
            raise SystemExit("--from-json writes markdown: give --markdown PATH")
        result = json.loads(args.from_json.read_text())
        if args.notes:
            result["notes"] = args.notes.read_text()
        args.markdown.write_text(render_markdown(result))
        print(f"wrote {args.markdown} from {args.from_json}")
        return 0
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    start = (date.today() - timedelta(days=args.days)).isoformat()  # recent data: anonymous ids within their TTL
    result: dict[str, Any] = {
        "machine": machine_info(),
        "command": command_line(argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data_start": start,
    }
    holder: dict[str, Any] = {}
    result["notes"] = args.notes.read_text() if args.notes else None
    result["warmup"] = warm_up(args, start)
    result["scales"] = [bench_scale(holder, args, n, start, largest=(n == args.scales[-1])) for n in args.scales]
    result["spark"] = holder.get("info")
    if "spark" in holder:
        holder["spark"].stop()  # the baseline scripts start their own Spark: never two at once
    if args.baselines:
        result["baselines"] = {"components": run_cc_baseline(args), "clv": run_clv_baseline(args)}
    result["growth"] = growth(result["scales"])
    result["incremental"] = incremental_ratios(result["scales"][-1])
    result["targets"] = cc_targets(result) + pipeline_targets(result)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    print_summary(result)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(result))
        print(f"\nwrote {args.out / 'bench.json'} and {args.markdown}")
    else:
        print(f"\nwrote {args.out / 'bench.json'}")
    runs = [s["full"] for s in result["scales"]] + [s["incremental"] for s in result["scales"] if s.get("incremental")]
    return 0 if all(r["succeeded"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
