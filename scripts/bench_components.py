"""Benchmark connected components: cdp-spark's native engine vs scipy, networkx and Splink.

Each graph family is generated once per size with numpy (fixed seed) and every engine runs on
that same graph in one process; all engines must agree on the number of components.

    .venv/bin/python scripts/bench_components.py --edges 1000000 --families random chain --json bench-results/cc.json
    .venv/bin/python scripts/bench_components.py --edges 10000000 --families random --skip-splink

Families: ``random`` (n = m nodes, uniform random endpoints) and ``chain`` (the sorted path
0-1-2-...-m, the adversarial order for label propagation). Splink's Spark clustering needs about
one round per node on a sorted chain, so it runs under ``--splink-timeout``: a timeout is
reported as a lower bound. A small untimed warm-up run of each Spark engine comes first (JIT,
codegen). Timings cover the engine call on in-memory input (Spark input
is cached first; networkx and scipy times include building their graph from the numpy arrays).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_components")


@dataclass
class Timing:
    engine: str
    family: str
    edges: int
    seconds: float | None
    components: int | None
    rounds: int | None = None
    note: str = ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edges", type=int, nargs="+", default=[1_000_000], help="edge counts, e.g. 1000000 10000000")
    p.add_argument("--families", nargs="+", default=["random", "chain"], choices=["random", "chain"])
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--skip-splink", action="store_true")
    p.add_argument("--skip-networkx", action="store_true")
    p.add_argument("--splink-timeout", type=float, default=600.0, help="seconds before Splink is cancelled")
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--driver-memory", default="8g")
    p.add_argument(
        "--local-finish-rows", type=int, default=None,
        help="native engine: finish on the driver below this many edge rows (default: the library's; 0: every round on Spark)",
    )
    return p.parse_args(argv)


def generate(family: str, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Edge endpoint arrays and the id space size (ids are 0..size-1; not all need appear)."""
    if family == "random":
        rng = np.random.default_rng(seed)
        return rng.integers(0, m, m, dtype=np.int64), rng.integers(0, m, m, dtype=np.int64), m
    ids = np.arange(m, dtype=np.int64)
    return ids, ids + 1, m + 1


def run_scipy(src: np.ndarray, dst: np.ndarray, size: int) -> tuple[float, int]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_cc

    start = time.perf_counter()
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(size, size)).tocsr()
    count, labels = scipy_cc(graph, directed=False)
    seconds = time.perf_counter() - start
    present = np.zeros(size, dtype=bool)
    present[src] = True
    present[dst] = True
    return seconds, len(np.unique(labels[present]))


def run_networkx(src: np.ndarray, dst: np.ndarray) -> tuple[float, int]:
    import networkx as nx

    start = time.perf_counter()
    graph = nx.Graph()
    graph.add_edges_from(zip(src.tolist(), dst.tolist()))
    count = nx.number_connected_components(graph)
    return time.perf_counter() - start, count


def run_native(spark, edges_df, local_finish_rows: int | None = None) -> tuple[float, int, int]:
    from pyspark.sql import functions as F

    from cdp_spark.identity._cc_native import DEFAULT_LOCAL_FINISH_ROWS
    from cdp_spark.identity.components import connected_components_with_stats

    finish = DEFAULT_LOCAL_FINISH_ROWS if local_finish_rows is None else local_finish_rows
    start = time.perf_counter()
    result, stats = connected_components_with_stats(edges_df, engine="native", local_finish_rows=finish)  # returns materialized
    seconds = time.perf_counter() - start
    count = result.select(F.countDistinct("component")).first()[0]
    return seconds, count, stats.rounds


class _SplinkRounds(logging.Handler):
    """Counts Splink's 'Completed iteration' log lines (progress for a timed-out run)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.iterations = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Completed iteration"):
            self.iterations += 1


def run_splink(spark, edges_df, timeout: float) -> tuple[float | None, int | None, int, str]:
    """Splink 5 clustering on Spark; cancelled after ``timeout`` seconds (then seconds is None)."""
    from pyspark import InheritableThread
    from pyspark.sql import functions as F
    from splink import SparkAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    edges = edges_df.select(F.col("src").alias("unique_id_l"), F.col("dst").alias("unique_id_r"))
    nodes = edges.select(F.col("unique_id_l").alias("unique_id")).union(edges.select("unique_id_r")).distinct()
    nodes = nodes.cache()
    nodes.count()
    counter = _SplinkRounds()
    splink_log = logging.getLogger("splink.internals.connected_components")
    splink_log.setLevel(logging.INFO)
    splink_log.addHandler(counter)
    outcome: dict[str, object] = {}
    group = f"splink-bench-{time.time_ns()}"

    def work() -> None:
        spark.sparkContext.setJobGroup(group, "splink clustering benchmark", interruptOnCancel=True)
        try:
            db_api = SparkAPI(spark_session=spark)
            clusters = cluster_pairwise_predictions_at_threshold(
                nodes, edges, db_api=db_api, node_id_column_name="unique_id", threshold_match_probability=None
            )
            outcome["seconds"] = time.perf_counter() - start
            outcome["count"] = clusters.as_spark_dataframe().select(F.countDistinct("cluster_id")).first()[0]
        except Exception as exc:  # cancelled by the timeout, or a real failure: both reported
            outcome["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    start = time.perf_counter()
    thread = InheritableThread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        spark.sparkContext.cancelJobGroup(group)
        thread.join(120)
        note = f"timeout after {timeout:.0f}s at iteration {counter.iterations}"
        result = (None, None, counter.iterations, note)
    elif "error" in outcome:
        result = (None, None, counter.iterations, str(outcome["error"]))
    else:
        result = (outcome["seconds"], outcome["count"], counter.iterations, "")  # type: ignore[assignment]
    splink_log.removeHandler(counter)
    nodes.unpersist()
    return result


def build_spark(driver_memory: str, checkpoint_dir: str):
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench-components")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.jars", similarity_jar_location())
        .config("spark.local.dir", checkpoint_dir)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(os.path.join(checkpoint_dir, "checkpoints"))
    return spark


def spark_input(spark, src: np.ndarray, dst: np.ndarray, workdir: str, name: str):
    """Write the arrays once as Parquet, read them back, cache and materialize."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(workdir, f"{name}.parquet")
    pq.write_table(pa.table({"src": src, "dst": dst}), path, row_group_size=1_000_000)
    parts = max(2, len(src) // 1_000_000)
    df = spark.read.parquet(path).repartition(parts).cache()
    df.count()
    return df


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    workdir = tempfile.mkdtemp(prefix="bench-cc-")
    spark = build_spark(args.driver_memory, workdir)
    warm_src, warm_dst, _ = generate("random", 20_000, args.seed)
    warm_df = spark_input(spark, warm_src, warm_dst, workdir, "warmup")
    log.info("warm-up (JIT, codegen) on 20,000 random edges, not timed")
    run_native(spark, warm_df, args.local_finish_rows)
    if not args.skip_splink:
        run_splink(spark, warm_df, args.splink_timeout)
    warm_df.unpersist()
    timings: list[Timing] = []
    summaries = []
    for m in args.edges:
        for family in args.families:
            src, dst, size = generate(family, m, args.seed)
            log.info("family=%s edges=%d seed=%d", family, m, args.seed)
            row: dict[str, Timing] = {}
            seconds, count = run_scipy(src, dst, size)
            row["scipy"] = Timing("scipy", family, m, seconds, count)
            if not args.skip_networkx:
                seconds, count = run_networkx(src, dst)
                row["networkx"] = Timing("networkx", family, m, seconds, count)
            edges_df = spark_input(spark, src, dst, workdir, f"{family}_{m}")
            seconds, count, rounds = run_native(spark, edges_df, args.local_finish_rows)
            row["native"] = Timing("native", family, m, seconds, count, rounds)
            if not args.skip_splink:
                seconds, count, iterations, note = run_splink(spark, edges_df, args.splink_timeout)
                row["splink"] = Timing("splink", family, m, seconds, count, iterations, note)
            edges_df.unpersist()
            for timing in row.values():
                log.info("%s", timing)
            counts = {t.components for t in row.values() if t.components is not None}
            if len(counts) != 1:
                raise SystemExit(f"engines disagree on the component count for {family} m={m}: {row}")
            native = row["native"].seconds
            splink = row.get("splink")
            summaries.append(
                {
                    "family": family,
                    "edges": m,
                    "components": counts.pop(),
                    "native_rounds": row["native"].rounds,
                    "native_over_scipy": ratio(native, row["scipy"].seconds),
                    "networkx_over_native": ratio(row["networkx"].seconds, native) if "networkx" in row else None,
                    "splink_over_native": ratio(splink.seconds, native) if splink else None,
                    "splink_over_native_lower_bound": (
                        ratio(args.splink_timeout, native) if splink and splink.note.startswith("timeout") else None
                    ),
                }
            )
            timings.extend(row.values())
    print_table(timings, summaries)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"timings": [asdict(t) for t in timings], "summary": summaries}, indent=2))
    spark.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_table(timings: list[Timing], summaries: list[dict]) -> None:
    print(f"\n{'family':8} {'edges':>10} {'engine':9} {'seconds':>9} {'components':>11} {'rounds':>7}  note")
    for t in timings:
        secs = f"{t.seconds:9.2f}" if t.seconds is not None else f"{'-':>9}"
        comps = f"{t.components:11d}" if t.components is not None else f"{'-':>11}"
        rounds = f"{t.rounds:7d}" if t.rounds is not None else f"{'':>7}"
        print(f"{t.family:8} {t.edges:10d} {t.engine:9} {secs} {comps} {rounds}  {t.note}")
    print()
    for s in summaries:
        parts = [f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()]
        print("  ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
