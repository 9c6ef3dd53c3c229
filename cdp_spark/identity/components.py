"""Connected components of the identity graph.

Two engines compute the same thing, the component of every node labelled by the smallest node id
in it:

- ``native``: randomized contraction on plain DataFrames (:mod:`cdp_spark.identity._cc_native`),
  O(log n) rounds whatever the id order, lineage broken every round, rounds bounded.
- ``graphframes``: a thin adapter over GraphFrames' connectedComponents, usable when its JVM
  classes are on the classpath (:mod:`cdp_spark.identity._cc_graphframes`).

``engine="auto"`` picks GraphFrames when it is loadable, the native engine otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType, LongType

from cdp_spark.errors import CdpError, ConfigError, MissingColumnsError
from cdp_spark.identity._cc_graphframes import run_graphframes
from cdp_spark.identity._cc_native import DEFAULT_LOCAL_FINISH_ROWS, run_native
from cdp_spark.session import detect_capabilities

log = logging.getLogger(__name__)

_ENGINES = ("auto", "native", "graphframes")
_CHECKPOINTS = ("local", "reliable")


@dataclass(frozen=True)
class ComponentsStats:
    """How a connected-components run went.

    ``rounds`` and ``nodes`` are ``None`` for the GraphFrames engine, which does not report them;
    ``keys`` says how the native engine keyed the ids (``integer``, ``hash`` or ``dense`` after a
    detected hash collision) and ``hash_collisions`` how many keys were shared by distinct ids.
    """

    engine: str
    rounds: int | None
    nodes: int | None
    keys: str | None
    hash_collisions: int


def connected_components(
    edges: DataFrame,
    *,
    src: str = "src",
    dst: str = "dst",
    engine: str = "auto",
    max_rounds: int | None = None,
    checkpoint: str = "local",
    local_finish_rows: int = DEFAULT_LOCAL_FINISH_ROWS,
) -> DataFrame:
    """Label every node of an edge list with the smallest node id of its connected component.

    Args:
        edges: one row per (undirected) edge; duplicates and both directions are fine. A self-loop
            ``a-a`` adds ``a`` as an isolated node; a row with one null endpoint adds the other
            endpoint alone; rows with two nulls are ignored.
        src, dst: the id columns, both integer or both of one other type (usually string).
        engine: ``"native"``, ``"graphframes"`` or ``"auto"`` (GraphFrames when loadable).
        max_rounds: round bound; default ``2*ceil(log2(n+1))+10`` for ``n`` nodes (native).
        checkpoint: ``"local"`` (localCheckpoint, fast, lost with its executor) or
            ``"reliable"`` (needs ``spark.sparkContext.setCheckpointDir``).
        local_finish_rows: native engine: once contraction leaves at most this many edge rows,
            the driver finishes in memory (scipy); 0 runs every round on Spark.

    Returns:
        A materialized DataFrame ``node``, ``component`` (types follow the id type; integer ids
        of mixed widths become ``long``), one row per distinct node; ``component`` is the smallest
        id of the component (numeric order for integers, code point order for strings).

    Raises:
        MissingColumnsError: ``src`` or ``dst`` is not a column of ``edges``.
        ConfigError: unknown ``engine``/``checkpoint``, bad ``max_rounds``, GraphFrames requested
            but not loadable, or ``checkpoint="reliable"`` without a checkpoint directory.
        ConvergenceError: edges remain after ``max_rounds`` rounds.
    """
    components, _ = connected_components_with_stats(
        edges, src=src, dst=dst, engine=engine, max_rounds=max_rounds, checkpoint=checkpoint, local_finish_rows=local_finish_rows
    )
    return components


def connected_components_with_stats(
    edges: DataFrame,
    *,
    src: str = "src",
    dst: str = "dst",
    engine: str = "auto",
    max_rounds: int | None = None,
    checkpoint: str = "local",
    local_finish_rows: int = DEFAULT_LOCAL_FINISH_ROWS,
) -> tuple[DataFrame, ComponentsStats]:
    """:func:`connected_components`, also returning the run's :class:`ComponentsStats`."""
    if engine not in _ENGINES:
        raise ConfigError(f"connected_components: engine={engine!r} is not one of {', '.join(_ENGINES)}")
    if checkpoint not in _CHECKPOINTS:
        raise ConfigError(f"connected_components: checkpoint={checkpoint!r} is not one of {', '.join(_CHECKPOINTS)}")
    if max_rounds is not None and max_rounds < 1:
        raise ConfigError(f"connected_components: max_rounds={max_rounds} must be a positive integer or None")
    if local_finish_rows < 0:
        raise ConfigError(f"connected_components: local_finish_rows={local_finish_rows} must be >= 0 (0 disables the local finish)")
    pairs = _id_pairs(edges, src, dst)

    graphframes_loadable = detect_capabilities(edges.sparkSession).graphframes
    if engine == "graphframes" and not graphframes_loadable:
        raise ConfigError(
            "connected_components: engine='graphframes' but GraphFrames JVM classes are not on the "
            "classpath; add the graphframes jar to spark.jars or use engine='native'"
        )
    chosen = "graphframes" if engine == "graphframes" or (engine == "auto" and graphframes_loadable) else "native"
    if engine == "auto":
        log.info("connected components engine=%s (auto; graphframes loadable=%s)", chosen, graphframes_loadable)

    if chosen == "graphframes":
        components = run_graphframes(pairs, max_rounds=max_rounds, checkpoint=checkpoint)
        return components, ComponentsStats(engine=chosen, rounds=None, nodes=None, keys=None, hash_collisions=0)
    run = run_native(pairs, max_rounds=max_rounds, checkpoint=checkpoint, local_finish_rows=local_finish_rows)
    stats = ComponentsStats(engine=chosen, rounds=run.rounds, nodes=run.nodes, keys=run.keys, hash_collisions=run.hash_collisions)
    return run.components, stats


def _id_pairs(edges: DataFrame, src: str, dst: str) -> DataFrame:
    """Validated endpoint pairs ``(a, b)`` of one id type, null endpoints replaced by the other."""
    missing = [c for c in (src, dst) if c not in edges.columns]
    if missing:
        raise MissingColumnsError(missing, where="connected_components edges")
    src_type, dst_type = edges.schema[src].dataType, edges.schema[dst].dataType
    if src_type == dst_type:
        id_type = src_type
    elif isinstance(src_type, IntegralType) and isinstance(dst_type, IntegralType):
        id_type = LongType()
    else:
        raise CdpError(
            f"connected_components edges: {src} is {src_type.simpleString()} but {dst} is "
            f"{dst_type.simpleString()}; cast both id columns to one type"
        )
    a, b = F.col(src).cast(id_type), F.col(dst).cast(id_type)
    return edges.select(F.coalesce(a, b).alias("a"), F.coalesce(b, a).alias("b")).filter(F.col("a").isNotNull())
