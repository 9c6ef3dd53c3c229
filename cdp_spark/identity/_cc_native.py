"""Native connected-components engine: randomized contraction on DataFrames.

Algorithm (Kiveris et al. 2014, "Connected Components in MapReduce and Beyond", contraction):
nodes carry pseudo-random 64-bit keys; every round maps each node to the smallest key of its
closed neighbourhood (its label) and replaces each edge ``(u, v)`` by ``(label(u), label(v))``,
dropping self-loops. The contracted graph has the same components and a constant fraction of the
nodes in expectation (about half on a path, whatever the id order, because keys are a random
permutation of the ids), so rounds are O(log n) and the work shrinks geometrically. A label
without edges is final; the per-round node -> label maps are chained at the end.

Lean round: two shuffles (by ``u``, then by ``v``), each followed by one sort and one streaming
window; no joins, no anti-join change detection, no separate distinct. The round's output (edges
and map rows together) is checkpointed once and its progress figures are observed during that
same job.

Local finish: when a round leaves at most ``local_finish_rows`` edge rows, they are collected
(Arrow) and scipy's connected components labels each remaining node with the smallest key of its
component; that map is the last round's. Driver memory stays bounded by the threshold.

Keys: integer ids go through a bijective Feistel permutation (collision-free, inverted at the
end). Other ids (strings) are keyed by xxhash64; distinct ids sharing a key are detected in the
first round and the run restarts on dense keys (unique ids numbered, then permuted).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType

from cdp_spark.errors import ConfigError, ConvergenceError

log = logging.getLogger(__name__)

# Feistel multipliers (odd, below 2**31) and the low-32-bit mask of the key permutation.
_FEISTEL = (0x5BD1E995, 0x1B873593, 0x2C1B3C6D)
_LOW32 = 0xFFFFFFFF
# Row kinds of a round's output.
_EDGE = 0
_MAP = 1
_CLASH = 2
# Target rows per shuffle partition once the edge list has been counted (round 2 on).
_ROWS_PER_PARTITION = 2_000_000
# Per-round maps up to this many rows are broadcast when the maps are composed.
_BROADCAST_ROWS = 2_000_000
# Once a contracted graph has at most this many (symmetric) edge rows, the driver finishes it in
# memory (scipy) instead of running more Spark rounds: a few rounds shrink any graph below it, and
# the last rounds, each a fixed Spark cost on little data, are most of the time on small graphs.
# 16M rows are 256 MB of keys on the driver (about 2 GB at the peak of the scipy step), whatever the
# input size; lower it (identity.cc_local_finish_rows) for a small driver. 0 disables the local finish.
DEFAULT_LOCAL_FINISH_ROWS = 16_000_000


@dataclass(frozen=True)
class NativeRun:
    """Result and figures of one native run."""

    components: DataFrame  # columns: node, component
    rounds: int
    nodes: int
    keys: str  # "integer", "hash" or "dense"
    hash_collisions: int


def _string_key(ids: Column) -> Column:
    """64-bit key of a non-integer id. Distinct ids may share a key: the engine detects that."""
    return F.xxhash64(ids)


def default_max_rounds(nodes: int) -> int:
    """Round bound used when the caller passes none: generous for O(log n) contraction."""
    return 2 * math.ceil(math.log2(nodes + 1)) + 10


def break_lineage(df: DataFrame, checkpoint: str) -> DataFrame:
    """Materialize ``df`` and cut its lineage (local or reliable checkpoint)."""
    if checkpoint == "local":
        return df.localCheckpoint(eager=True)
    if df.sparkSession.sparkContext.getCheckpointDir() is None:
        raise ConfigError(
            "checkpoint='reliable' needs a checkpoint directory: call "
            "spark.sparkContext.setCheckpointDir(<path>) first, or pass checkpoint='local'"
        )
    return df.checkpoint(eager=True)


def release_checkpoint(df: DataFrame) -> None:
    """Drop the blocks of a local checkpoint made by :func:`break_lineage` once nothing reads it.

    Without this, the blocks stay (memory and local disk) until the driver garbage-collects the
    DataFrame, which a long stage with a large heap may not do before the disk is full. A frame
    that is not a checkpoint, or a session without a JVM gateway (Spark Connect), is left alone.
    """
    jdf = getattr(df, "_jdf", None)
    if jdf is None:
        return
    plan = jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def _feistel_step(half: Column, multiplier: int) -> Column:
    # half < 2**32 and multiplier < 2**31: the product stays below 2**63 (no ANSI overflow).
    return (half * F.lit(multiplier)).bitwiseAND(F.lit(_LOW32)).bitwiseXOR(F.shiftrightunsigned(half, 15))


def _permute(x: Column) -> Column:
    """A pseudo-random bijection of 64-bit keys (three-round Feistel network on 32-bit halves)."""
    left, right = F.shiftrightunsigned(x, 32), x.bitwiseAND(F.lit(_LOW32))
    for multiplier in _FEISTEL:
        left, right = right, left.bitwiseXOR(_feistel_step(right, multiplier))
    return F.shiftleft(left, 32).bitwiseOR(right)


def _unpermute(y: Column) -> Column:
    """The inverse of :func:`_permute`."""
    left, right = F.shiftrightunsigned(y, 32), y.bitwiseAND(F.lit(_LOW32))
    for multiplier in reversed(_FEISTEL):
        left, right = right.bitwiseXOR(_feistel_step(left, multiplier)), left
    return F.shiftleft(left, 32).bitwiseOR(right)


def _contract(rows: DataFrame, parts: int, with_ids: bool) -> DataFrame:
    """One contraction round (lazy).

    ``rows``: the symmetric edge list ``(u, v[, v_id])`` of node keys, duplicates allowed. Keys
    are pseudo-random (see :func:`_permute`), so a node's label is simply the smallest key of its
    closed neighbourhood. Returns rows ``(kind, u, v, id)``: ``kind=_EDGE`` rows are the
    contracted symmetric edge list (duplicates allowed: the next round drops them), ``kind=_MAP``
    rows map node ``u`` to its label ``v`` (``id``: the node's original id when ``with_ids``),
    ``kind=_CLASH`` rows flag a key shared by distinct ids.

    Two shuffles, each followed by one sort and one streaming window (first row, previous row,
    row number): rows of ``u`` sorted by neighbour give the label of ``u`` and drop duplicate
    rows; rows of ``v`` sorted by neighbour give the label of ``v`` and its one map row.
    """
    ids = ["v_id"] if with_ids else []
    by_u = Window.partitionBy("u").orderBy("v", *ids)
    s = rows.repartition(parts, "u").select(
        "u",
        "v",
        *ids,
        F.first("v").over(by_u.rowsBetween(Window.unboundedPreceding, Window.currentRow)).alias("min_v"),
        F.lag("v").over(by_u).alias("prev_v"),
        *([F.lag("v_id").over(by_u).alias("prev_id")] if with_ids else []),
    )
    lu = F.least("u", "min_v").alias("lu")
    dup = F.coalesce(F.col("prev_v") == F.col("v"), F.lit(False))
    if with_ids:
        clash = dup & (F.col("prev_id") != F.col("v_id"))
        s = s.filter(~dup | clash).select("u", "v", lu, "v_id", clash.alias("clash"))
    else:
        s = s.filter(~dup).select("u", "v", lu)

    by_v = Window.partitionBy("v").orderBy("u")
    head_v = by_v.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    s = s.repartition(parts, "v").select(
        "*",
        F.least(F.col("v"), F.first("u").over(head_v)).alias("lv"),
        F.row_number().over(by_v).alias("rn"),
        *([F.first("v_id").over(head_v).alias("first_id")] if with_ids else []),
    )
    if with_ids:
        node_id, no_id = F.col("first_id"), F.lit(None).cast(s.schema["v_id"].dataType)
    else:
        node_id = no_id = F.lit(None).cast("long")

    def row(kind: int, u: str, v: str, id_: Column) -> Column:
        return F.struct(F.lit(kind).alias("kind"), F.col(u).alias("u"), F.col(v).alias("v"), id_.alias("id"))

    emitted = [
        F.when(F.col("lv") != F.col("lu"), row(_EDGE, "lv", "lu", no_id)),
        F.when(F.col("rn") == 1, row(_MAP, "v", "lv", node_id)),
    ]
    if with_ids:
        clashed = F.col("clash") | (F.col("v_id") != F.col("first_id"))
        emitted.append(F.when(clashed, row(_CLASH, "v", "v", F.col("v_id"))))
    return s.select(F.explode(F.array(*emitted)).alias("r")).filter(F.col("r").isNotNull()).select("r.*")


def _materialize_round(out: DataFrame, checkpoint: str) -> tuple[DataFrame, dict[str, int]]:
    """Checkpoint a round's output; its figures are observed during that same job."""
    figures = Observation()
    observed = out.observe(
        figures,
        F.count(F.when(F.col("kind") == _EDGE, 1)).alias("edge_rows"),
        F.count(F.when(F.col("kind") == _MAP, 1)).alias("nodes"),
        F.count(F.when((F.col("kind") == _MAP) & (F.col("u") != F.col("v")), 1)).alias("changed"),
        F.count(F.when(F.col("kind") == _CLASH, 1)).alias("collisions"),
    )
    return break_lineage(observed, checkpoint), figures.get


def _keyed_first_round(pairs: DataFrame, keys: str) -> DataFrame:
    """Symmetric first-round rows ``(u, v[, v_id])`` from id pairs ``(a, b)`` (self-loops kept:
    they give isolated nodes their map row). ``keys='dense'`` expects ``(a, b, ka, kb)``."""
    if keys == "integer":
        ka, kb = _permute(F.col("a").cast("long")), _permute(F.col("b").cast("long"))
        return pairs.select(ka.alias("u"), kb.alias("v")).unionAll(pairs.select(kb.alias("u"), ka.alias("v")))
    if keys == "hash":
        ka, kb = _string_key(F.col("a")), _string_key(F.col("b"))
    else:
        ka, kb = F.col("ka"), F.col("kb")
    return pairs.select(ka.alias("u"), kb.alias("v"), F.col("b").alias("v_id")).unionAll(
        pairs.select(kb.alias("u"), ka.alias("v"), F.col("a").alias("v_id"))
    )


def _dense_pairs(pairs: DataFrame, checkpoint: str, held: list[DataFrame]) -> DataFrame:
    """Id pairs with collision-free long keys ``(a, b, ka, kb)``; the key table is appended to ``held``.

    monotonically_increasing_id() runs on a checkpointed (fixed-partition) frame and is
    materialized at once: on a frame AQE could re-partition, it can hand out duplicate ids
    (the root cause of GraphFrames issues #428/#453).
    """
    ids = break_lineage(pairs.select(F.col("a").alias("id")).union(pairs.select("b")).distinct(), checkpoint)
    keyed = break_lineage(ids.withColumn("key", _permute(F.monotonically_increasing_id())), checkpoint)
    release_checkpoint(ids)
    held.append(keyed)
    return (
        pairs.join(keyed.select(F.col("id").alias("a"), F.col("key").alias("ka")), "a")
        .join(keyed.select(F.col("id").alias("b"), F.col("key").alias("kb")), "b")
        .select("a", "b", "ka", "kb")
    )


def _compose(maps: list[tuple[DataFrame, int]]) -> DataFrame:
    """Chain the per-round maps into ``(node, comp, id)`` for the first round's nodes.

    A label is a node of the next round exactly when it still has an edge there, and a node
    absent from a round never comes back, so a left lookup per round (keeping the label when the
    lookup misses) follows every node to its final label. All lookups run in the one pass over
    the first map; later maps shrink geometrically and are broadcast while small.
    """
    first, _ = maps[0]
    composed = first.select(F.col("u").alias("node"), F.col("v").alias("comp"), "id")
    for node_map, nodes in maps[1:]:
        step = node_map.select(F.col("u").alias("comp"), F.col("v").alias("next"))
        if nodes <= _BROADCAST_ROWS:
            step = F.broadcast(step)
        composed = composed.join(step, "comp", "left").select("node", F.coalesce("next", "comp").alias("comp"), "id")
    return composed


def _finish_locally(edge_rows: DataFrame) -> tuple[DataFrame, int]:
    """``(u, label)`` for every node of a small symmetric key edge list, label the smallest key of
    its component (scipy on the driver), and the node count."""
    import numpy as np
    import pyarrow as pa
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    table = edge_rows.select("u", "v").toArrow()
    u = table.column("u").to_numpy()
    v = table.column("v").to_numpy()
    keys, index = np.unique(np.concatenate([u, v]), return_inverse=True)  # keys sorted ascending
    n = len(keys)
    # float weights: duplicate edges are summed and must never wrap around to an explicit zero
    graph = coo_matrix((np.ones(len(u), dtype=np.float32), (index[: len(u)], index[len(u) :])), shape=(n, n))
    _, labels = scipy_components(graph, directed=False)
    # Keys are sorted, so a component's first node (in key order) holds its smallest key.
    _, first = np.unique(labels, return_index=True)
    label_of = keys[first[labels]]
    spark = edge_rows.sparkSession
    return spark.createDataFrame(pa.table({"u": pa.array(keys, pa.int64()), "v": pa.array(label_of, pa.int64())})), n


def run_native(
    pairs: DataFrame, *, max_rounds: int | None, checkpoint: str, local_finish_rows: int = DEFAULT_LOCAL_FINISH_ROWS
) -> NativeRun:
    """Connected components of the id pairs ``(a, b)`` (one id type, no nulls).

    Returns ``node``/``component`` rows, ``component`` the smallest id of the node's component.
    Raises :class:`ConvergenceError` when edges remain after the round bound. A contracted graph
    of at most ``local_finish_rows`` edge rows is finished on the driver (0: never).
    """
    id_type = pairs.schema["a"].dataType
    keys = "integer" if isinstance(id_type, IntegralType) else "hash"
    with_ids = keys != "integer"
    spark = pairs.sparkSession
    parts = max(int(spark.conf.get("spark.sql.shuffle.partitions")), 1)
    min_parts = max(spark.sparkContext.defaultParallelism, 1)

    # Every round's output stays until the maps are composed, then its blocks are dropped at once.
    held: list[DataFrame] = []
    out, figures = _materialize_round(_contract(_keyed_first_round(pairs, keys), parts, with_ids), checkpoint)
    held.append(out)
    collisions = figures["collisions"]
    if collisions:
        log.warning(
            "connected components: %d node keys are shared by distinct ids (hash collision); "
            "restarting on dense keys",
            collisions,
        )
        keys = "dense"
        release_checkpoint(out)
        held.clear()
        dense = _keyed_first_round(_dense_pairs(pairs, checkpoint, held), keys)
        out, figures = _materialize_round(_contract(dense, parts, with_ids), checkpoint)
        held.append(out)
    nodes = figures["nodes"]
    log.info("connected components round=%d changed=%d edges=%d", 1, figures["changed"], figures["edge_rows"] // 2)

    bound = max_rounds if max_rounds is not None else default_max_rounds(nodes)
    maps = [(out.filter(F.col("kind") == _MAP), nodes)]
    round_no = 1
    while figures["edge_rows"]:
        if round_no >= bound:
            raise ConvergenceError("connected components (native engine)", bound)
        round_no += 1
        rows = out.filter(F.col("kind") == _EDGE).select("u", "v")
        if figures["edge_rows"] <= local_finish_rows:
            final_map, remaining = _finish_locally(rows)
            log.info("connected components round=%d: %d edge rows, %d nodes finished on the driver", round_no, figures["edge_rows"], remaining)
            maps.append((final_map, remaining))
            break
        parts = min(parts, max(min_parts, math.ceil(figures["edge_rows"] / _ROWS_PER_PARTITION)))
        out, figures = _materialize_round(_contract(rows, parts, with_ids=False), checkpoint)
        held.append(out)
        log.info("connected components round=%d changed=%d edges=%d", round_no, figures["changed"], figures["edge_rows"] // 2)
        maps.append((out.filter(F.col("kind") == _MAP), figures["nodes"]))

    composed = _compose(maps)
    node_id = F.col("id") if with_ids else _unpermute(F.col("node")).cast(id_type)
    result = composed.select(
        node_id.alias("node"), F.min(node_id).over(Window.partitionBy("comp")).alias("component")
    )
    result = break_lineage(result, checkpoint)
    for frame in held:
        release_checkpoint(frame)
    return NativeRun(components=result, rounds=round_no, nodes=nodes, keys=keys, hash_collisions=collisions)
