"""The identity stage: graph → connected components → persistent customer IDs → ``gold.identity_map``.

Persistent IDs (``customer_uid``)
---------------------------------
The previous run's node → uid assignment (``gold.identity_nodes``) is overlaid on the new
components. Each old uid belongs to the new component holding most of its nodes (ties: the
smaller component id); a component owning several old uids keeps the OLDEST (registry
``created_at``, then uid) and records the others as merged into it; a component owning none
gets a new uid. So an unchanged person keeps its ID, a merge keeps the oldest, and on a split
the part with the largest overlap keeps the ID while the others get new ones. New uids are a
hash of the component's smallest node and the registry version they are minted against:
deterministic (a rerun of the same run mints the same IDs) and never reused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.faults import fault_point
from cdp_spark.identity.graph import blocklist, build_edges, junk_nodes, node_col, prune_weak_links, record_components
from cdp_spark.ops import lake_for

log = logging.getLogger(__name__)

# Component-size buckets of identity_metrics.size_histogram: (label, largest record count in it).
SIZE_BUCKETS: tuple[tuple[str, int | None], ...] = (("1", 1), ("2", 2), ("3-5", 5), ("6-10", 10), ("11-100", 100), (">100", None))
HISTOGRAM_BUCKETS = tuple(label for label, _ in SIZE_BUCKETS)

REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("customer_uid", T.StringType(), False),
        T.StructField("status", T.StringType(), False),  # active | merged | retired
        T.StructField("merged_into", T.StringType(), True),
        T.StructField("split_from", T.StringType(), True),
        T.StructField("created_at", T.TimestampType(), False),
        T.StructField("created_run_id", T.StringType(), False),
        T.StructField("updated_run_id", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class IdentityReport:
    rows_in: int
    rows_out: int
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.metrics)


def assign_customer_uids(
    components: DataFrame, previous: DataFrame | None, registry: DataFrame | None, *, mint_salt: str
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Overlay the previous assignment on new components.

    ``components``: ``node, component``; ``previous``: ``node, customer_uid``; ``registry``: REGISTRY_SCHEMA.
    Returns ``(assignment: component, customer_uid, is_new, split_from)``, ``merges: customer_uid, merged_into``
    and ``splits: customer_uid (new), split_from``.
    """
    spark = components.sparkSession
    if previous is None or registry is None:
        previous = spark.createDataFrame([], "node string, customer_uid string")
        registry = spark.createDataFrame([], REGISTRY_SCHEMA)
    active = registry.where(F.col("status") == "active").select("customer_uid", "created_at")
    overlap = (
        components.join(previous, "node")
        .groupBy("component", "customer_uid")
        .agg(F.count(F.lit(1)).alias("overlap"))
        .join(active, "customer_uid")
    )
    owner_w = Window.partitionBy("customer_uid").orderBy(F.col("overlap").desc(), F.col("component"))
    owned = overlap.withColumn("rank", F.row_number().over(owner_w))
    owners = owned.where("rank = 1")
    keep_w = Window.partitionBy("component").orderBy(F.col("created_at"), F.col("customer_uid"))
    ranked = owners.withColumn("keep_rank", F.row_number().over(keep_w))
    kept = ranked.where("keep_rank = 1").select("component", "customer_uid")
    merges = (
        ranked.where("keep_rank > 1")
        .select("component", F.col("customer_uid").alias("merged_uid"))
        .join(kept.withColumnRenamed("customer_uid", "merged_into"), "component")
        .select(F.col("merged_uid").alias("customer_uid"), "merged_into")
    )
    # Components owning no old uid: new uid; remember which old uid they split from, if any.
    split_src = owned.where("rank > 1").groupBy("component").agg(F.min("customer_uid").alias("split_from"))
    comps = components.select("component").distinct()
    fresh = (
        comps.join(kept, "component", "left_anti")
        .join(split_src, "component", "left")
        .withColumn("customer_uid", F.concat(F.lit("cu_"), F.substring(F.sha2(F.concat(F.col("component"), F.lit("|" + mint_salt)), 256), 1, 24)))
    )
    assignment = kept.withColumn("is_new", F.lit(False)).withColumn("split_from", F.lit(None).cast("string")).unionByName(
        fresh.select("component", "customer_uid", F.lit(True).alias("is_new"), "split_from")
    )
    splits = fresh.where(F.col("split_from").isNotNull()).select("customer_uid", "split_from")
    return assignment, merges, splits


def updated_registry(registry: DataFrame | None, assignment: DataFrame, merges: DataFrame, *, run_id: str, now: datetime) -> DataFrame:
    """Registry after this run: new uids added, merged uids marked, uids with no component retired."""
    spark = assignment.sparkSession
    if registry is None:
        registry = spark.createDataFrame([], REGISTRY_SCHEMA)
    new_rows = assignment.where("is_new").select(
        "customer_uid",
        F.lit("active").alias("status"),
        F.lit(None).cast("string").alias("merged_into"),
        "split_from",
        F.lit(now).cast("timestamp").alias("created_at"),
        F.lit(run_id).alias("created_run_id"),
        F.lit(run_id).alias("updated_run_id"),
    )
    live = assignment.select("customer_uid", F.lit(True).alias("_live"))
    old = (
        registry.join(merges.withColumnRenamed("merged_into", "_into"), "customer_uid", "left")
        .join(live, "customer_uid", "left")
        .select(
            "customer_uid",
            F.when(F.col("_into").isNotNull(), F.lit("merged"))
            .when((F.col("status") == "active") & F.col("_live").isNull(), F.lit("retired"))
            .otherwise(F.col("status"))
            .alias("status"),
            F.coalesce(F.col("_into"), F.col("merged_into")).alias("merged_into"),
            "split_from",
            "created_at",
            "created_run_id",
            F.when(F.col("_into").isNotNull() | ((F.col("status") == "active") & F.col("_live").isNull()), F.lit(run_id))
            .otherwise(F.col("updated_run_id"))
            .alias("updated_run_id"),
        )
    )
    return old.unionByName(new_rows)


def _expired_anonymous(identifiers: DataFrame, rc: DataFrame, *, cutoff: datetime) -> DataFrame:
    """Components made only of anonymous identifiers, last seen before ``cutoff``."""
    per_comp = identifiers.join(rc.select("source", "record_id", "component"), ["source", "record_id"]).groupBy("component").agg(
        F.min(F.col("anonymous").cast("int")).alias("all_anon"), F.max("seen_at").alias("last_seen")
    )
    return per_comp.where((F.col("all_anon") == 1) & (F.col("last_seen") < F.lit(cutoff))).select("component")


def _with_probabilistic_edges(spark: SparkSession, cfg: CdpConfig, lake, edges: DataFrame, identifiers: DataFrame, blocked: DataFrame) -> DataFrame:
    """``edges`` plus the Splink edges between person records (and their record-node links), when enabled.

    Exact edges get null ``match_weight`` and ``explanation``; the probabilistic ones keep
    Splink's per-comparison match weights for ``cdp explain``.
    """
    pcfg = cfg.identity.probabilistic
    if not pcfg.enabled:
        return edges
    if not lake.exists("silver", "customer_records"):
        log.info("probabilistic matching: no silver.customer_records (no person sources); exact edges only")
        return edges
    from cdp_spark.identity.probabilistic import model_dir_for, probabilistic_edges, record_node_edges

    pairs = probabilistic_edges(
        spark, lake.read("silver", "customer_records"), cfg=pcfg, model_dir=model_dir_for(cfg), retrain=pcfg.retrain, mlflow_config=cfg
    ).localCheckpoint()
    log.info("probabilistic matching: %d record pair(s) at match probability >= %s", pairs.count(), pcfg.match_probability)
    return edges.unionByName(pairs, allowMissingColumns=True).unionByName(record_node_edges(pairs, identifiers, blocked), allowMissingColumns=True)


def run_identity(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> IdentityReport:
    from cdp_spark.identity._cc_native import release_checkpoint
    from cdp_spark.identity.components import connected_components
    from cdp_spark.privacy.pseudonymize import load_secret

    lake = lake_for(spark, cfg, run_id=run_id, stage="identity")
    key = load_secret(cfg.silver.pseudonymization_secret_env, local_file=cfg.silver.local_secret_file, allow_create=cfg.spark.mode == "embedded")
    identifiers = lake.read("silver", "identifiers").cache()
    rows_in = identifiers.count()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    as_of = datetime.combine(run_date, datetime.min.time()) if run_date else now

    # Checkpoints, not caches: a cached frame keeps its plan, and with it every shuffle file that
    # built it, on the local disk until the stage ends; a checkpoint lets the cleaner delete them.
    blocked = blocklist(identifiers, cfg.identity, junk_nodes(spark, cfg.identity.junk_values, key)).localCheckpoint()
    link_types = {tuple(r.types): r.confidence for r in cfg.identity.link_rules} or None
    edges = build_edges(identifiers, blocked, link_types)
    edges = _with_probabilistic_edges(spark, cfg, lake, edges, identifiers, blocked).localCheckpoint()
    cc_results: list[DataFrame] = []

    def cc(e: DataFrame) -> DataFrame:
        result = connected_components(
            e, engine=cfg.engines.components, max_rounds=cfg.identity.max_rounds, local_finish_rows=cfg.identity.cc_local_finish_rows
        )
        cc_results.append(result)
        return result

    comps, suspects = prune_weak_links(edges, cc(edges.select("src", "dst")), cc)
    comps = comps.localCheckpoint()
    pruned_components = suspects.count()
    # Both component runs live on in ``comps``; their checkpoints would hold the local disk until the stage ends.
    for result in cc_results:
        release_checkpoint(result)
    # Each frame below is read by several writes and counts: computed once (a checkpoint), not once per action.
    all_rc = record_components(identifiers, blocked, comps).localCheckpoint()
    expired = _expired_anonymous(identifiers, all_rc, cutoff=as_of - timedelta(days=cfg.identity.anonymous_ttl_days)).localCheckpoint()
    identifiers.unpersist()  # read for the last time above
    rc = all_rc.join(expired, "component", "left_anti")
    comps = comps.join(expired, "component", "left_anti")

    previous = lake.read("gold", "identity_nodes").select("node", "customer_uid") if lake.exists("gold", "identity_nodes") else None
    registry = lake.read("gold", "customer_id_registry") if lake.exists("gold", "customer_id_registry") else None
    registry_version = lake.version("gold", "customer_id_registry") if registry is not None else -1
    assignment, merges, splits = assign_customer_uids(comps, previous, registry, mint_salt=f"v{registry_version}")
    assignment, merges, splits = assignment.localCheckpoint(), merges.localCheckpoint(), splits.localCheckpoint()

    identity_map = rc.join(assignment, "component").select("source", "record_id", "customer_uid").localCheckpoint()
    release_checkpoint(all_rc)
    identity_nodes = comps.join(assignment, "component").select("node", "customer_uid", "component")
    new_registry = updated_registry(registry, assignment, merges, run_id=run_id, now=now).localCheckpoint()
    edges_out = edges.join(comps.select(F.col("node").alias("src"), "component"), "src").join(
        assignment.select("component", "customer_uid"), "component"
    ).drop("component")

    sizes = identity_map.groupBy("customer_uid").agg(F.count(F.lit(1)).alias("records"))
    size_stats = sizes.agg(
        F.count(F.lit(1)).alias("customers"), F.max("records").alias("largest"), F.expr("percentile_approx(records, 0.5)").alias("median"),
        F.sum(F.when(F.col("records") > cfg.identity.component_size_alarm, 1).otherwise(0)).alias("over_alarm"),
    ).first()
    bucket = F.lit(SIZE_BUCKETS[-1][0])
    for label, upper in reversed(SIZE_BUCKETS[:-1]):
        bucket = F.when(F.col("records") <= upper, label).otherwise(bucket)
    counts = {r["bucket"]: int(r["n"]) for r in sizes.groupBy(bucket.alias("bucket")).agg(F.count(F.lit(1)).alias("n")).collect()}
    # in bucket order, not collect() order: the stored text must be the same on every run over the same data
    hist = {label: counts[label] for label in HISTOGRAM_BUCKETS if label in counts}
    merges_n, splits_n = merges.count(), splits.count()
    blocked_n = blocked.count()

    lake.overwrite("gold", "identity_map", identity_map)
    lake.overwrite("gold", "identity_nodes", identity_nodes)
    lake.overwrite("gold", "identity_edges", edges_out)
    lake.overwrite("gold", "identity_blocklist", blocked.withColumn("run_id", F.lit(run_id)))
    fault_point("identity.after_map_before_registry")
    lake.overwrite("gold", "customer_id_registry", new_registry)
    if merges_n:
        # keyed by run: a resumed run replaces its own rows instead of adding them twice
        lake.upsert(
            "gold", "identity_merges", merges.withColumn("run_id", F.lit(run_id)).withColumn("merged_at", F.lit(now).cast("timestamp")),
            keys=["run_id", "customer_uid"],
        )
    metrics = {
        "customers": int(size_stats["customers"] or 0),
        "largest_component_records": int(size_stats["largest"] or 0),
        "median_component_records": int(size_stats["median"] or 0),
        "components_over_alarm": int(size_stats["over_alarm"] or 0),
        "size_histogram": hist,
        "merges": merges_n,
        "splits": splits_n,
        "blocklisted_identifiers": blocked_n,
        "multi_account_components_pruned": pruned_components,
        "edges": edges.count(),
    }
    metrics_row = spark.createDataFrame(
        [(run_id, now, metrics["customers"], metrics["largest_component_records"], metrics["components_over_alarm"], merges_n, splits_n, blocked_n, str(hist))],
        "run_id string, computed_at timestamp, customers long, largest_component_records long, components_over_alarm long, merges long, splits long, blocklisted long, size_histogram string",
    )
    lake.upsert("gold", "identity_metrics", metrics_row, keys=["run_id"])
    rows_out = lake.read("gold", "identity_map").count()
    log.info("identity: %s", metrics)
    return IdentityReport(rows_in=rows_in, rows_out=rows_out, metrics=metrics)
