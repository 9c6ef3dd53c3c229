"""Connected components against networkx on many graph families.

Spark rounds are the expensive part on this machine, so the default suite runs each id type once
(integers with every round on Spark, strings with the driver-side local finish)
on a disjoint union of graph families (components never cross families) and checks every family
separately against networkx; the 100k-node sorted chain is slow-marked.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Hashable, Iterable

import networkx as nx
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from cdp_spark.errors import ConfigError, ConvergenceError, MissingColumnsError
from cdp_spark.identity import _cc_native
from cdp_spark.identity.components import connected_components, connected_components_with_stats
from cdp_spark.session import detect_capabilities

log = logging.getLogger(__name__)

Edge = tuple[Hashable | None, Hashable | None]
RANDOM_SEEDS = (7, 11, 23)


def oracle(edges: Iterable[Edge]) -> set[tuple[Hashable, Hashable]]:
    """(node, smallest node of its component) from networkx; a null endpoint adds the other alone."""
    graph = nx.Graph()
    for a, b in edges:
        if a is not None and b is not None:
            graph.add_edge(a, b)
        elif a is not None or b is not None:
            graph.add_node(a if a is not None else b)
    return {(node, min(comp)) for comp in nx.connected_components(graph) for node in comp}


def random_graph(seed: int, nodes: int, edges: int) -> list[Edge]:
    rng = random.Random(seed)
    log.info("random graph seed=%d nodes=%d edges=%d", seed, nodes, edges)
    return [(rng.randrange(nodes), rng.randrange(nodes)) for _ in range(edges)]


def integer_families() -> dict[str, list[Edge]]:
    """Local-id edge lists; the caller offsets each family so families stay disjoint."""
    families = {f"random_seed{seed}": random_graph(seed, 60, 50) for seed in RANDOM_SEEDS}
    families["random_dense_seed3"] = random_graph(3, 40, 120)
    families["sorted_chain"] = [(i, i + 1) for i in range(2999)]
    families["reversed_chain"] = [(i + 1, i) for i in reversed(range(499))]
    families["star_smallest_center"] = [(0, leaf) for leaf in range(1, 301)]
    families["star_largest_center"] = [(300, leaf) for leaf in range(300)]
    clique_a = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    clique_b = [(i + 8, j + 8) for i, j in clique_a]
    families["cliques_joined_by_one_edge"] = clique_a + clique_b + [(7, 15)]
    families["self_loops_and_isolated_nodes"] = [(0, 0), (1, 1), (1, 1), (2, 3), (3, 3), (4, 4)]
    families["duplicate_and_reversed_edges"] = [(0, 1), (1, 0), (0, 1), (2, 1), (1, 2), (4, 3), (3, 4), (3, 4)]
    families["null_endpoints"] = [(0, None), (None, 1), (None, None), (2, 3)]
    return families


def offset(edges: list[Edge], by: int) -> list[Edge]:
    return [tuple(None if x is None else x + by for x in edge) for edge in edges]  # type: ignore[misc]


INT_FAMILIES = {name: offset(edges, i * 100_000) for i, (name, edges) in enumerate(integer_families().items())}


def unicode_families() -> dict[str, list[Edge]]:
    """String-id families; ids mix scripts, emoji and combining marks."""

    def named(prefix: str) -> Callable[[int], str]:
        return lambda i: f"{prefix}-{i:05d}"

    ru, jp, emo, comb, zoe, omega = (named(p) for p in ("ру", "日本", "😀", "e\u0301", "Zoë", "Ω"))
    families = {
        f"unicode_random_seed{seed}": [(ru(a) + str(seed), jp(b) + str(seed)) for a, b in random_graph(seed, 50, 45)]
        for seed in RANDOM_SEEDS
    }
    families["unicode_sorted_chain"] = [(emo(i), emo(i + 1)) for i in range(999)]
    families["unicode_star_and_duplicates"] = [(comb(0), comb(i)) for i in range(1, 40)] + [(comb(3), comb(0))] * 3
    families["unicode_self_loop_isolated"] = [(zoe(1), zoe(1)), (omega(2), omega(2)), (omega(3), None)]
    families["unicode_mixed_scripts"] = [("Ωmega", "alpha"), ("alpha", "日本"), ("😀", "Ωmega"), ("ß", "ss")]
    return families


STR_FAMILIES = unicode_families()


def _all_edges(families: dict[str, list[Edge]]) -> list[Edge]:
    return [edge for edges in families.values() for edge in edges]


@pytest.fixture(scope="module")
def int_run(spark):
    edges = spark.createDataFrame(_all_edges(INT_FAMILIES), "src int, dst int")
    result, stats = connected_components_with_stats(edges, local_finish_rows=0)  # every round on Spark
    return result, set(map(tuple, result.collect())), stats


@pytest.fixture(scope="module")
def str_run(spark):
    edges = spark.createDataFrame(_all_edges(STR_FAMILIES), "left string, right string")
    # default local finish: round 1 on Spark, the contracted rest on the driver
    result, stats = connected_components_with_stats(edges, src="left", dst="right", engine="native", checkpoint="reliable")
    return result, set(map(tuple, result.collect())), stats


def _family_rows(rows: set[tuple], edges: list[Edge]) -> set[tuple]:
    nodes = {x for edge in edges for x in edge if x is not None}
    return {row for row in rows if row[0] in nodes}


@pytest.mark.parametrize("family", list(INT_FAMILIES))
def test_integer_ids_match_networkx(int_run, family):
    _, rows, _ = int_run
    assert _family_rows(rows, INT_FAMILIES[family]) == oracle(INT_FAMILIES[family])


@pytest.mark.parametrize("family", list(STR_FAMILIES))
def test_unicode_string_ids_match_networkx(str_run, family):
    _, rows, _ = str_run
    assert _family_rows(rows, STR_FAMILIES[family]) == oracle(STR_FAMILIES[family])


def test_one_row_per_node_and_nothing_else(int_run, str_run):
    for (result, rows, _), families in ((int_run, INT_FAMILIES), (str_run, STR_FAMILIES)):
        assert rows == oracle(_all_edges(families))
        assert result.count() == len(rows)


def test_output_types_follow_input_types(int_run, str_run):
    assert int_run[0].schema == StructType([StructField("node", IntegerType()), StructField("component", IntegerType())])
    assert str_run[0].schema == StructType([StructField("node", StringType()), StructField("component", StringType())])


def test_auto_engine_falls_back_to_native_and_rounds_stay_logarithmic(int_run):
    _, rows, stats = int_run
    assert stats.engine == "native" and stats.keys == "integer" and stats.hash_collisions == 0
    assert stats.nodes == len(rows)
    assert stats.rounds <= 2 * math.log2(stats.nodes) + 4


def test_small_contracted_graphs_finish_on_the_driver_with_the_same_result(spark, int_run):
    _, distributed_rows, distributed = int_run
    edges = spark.createDataFrame(_all_edges(INT_FAMILIES), "src int, dst int")
    result, stats = connected_components_with_stats(edges)  # default threshold: finished after round 1
    assert set(map(tuple, result.collect())) == distributed_rows
    assert stats.rounds == 2 < distributed.rounds


def test_string_ids_are_hashed_without_collision(str_run):
    _, rows, stats = str_run
    assert (stats.keys, stats.hash_collisions, stats.nodes) == ("hash", 0, len(rows))


def test_hash_collision_is_detected_and_results_stay_exact(spark, monkeypatch):
    # Injected key function: every id with the same first character shares one key.
    monkeypatch.setattr(_cc_native, "_string_key", lambda ids: F.xxhash64(F.substring(ids, 1, 1)))
    edges = [("a1", "a2"), ("a3", "b1"), ("b2", "b3"), ("c1", "c1"), ("a4", "a4"), ("b3", "b4")]
    result, stats = connected_components_with_stats(spark.createDataFrame(edges, "src string, dst string"))
    assert stats.keys == "dense" and stats.hash_collisions > 0
    expected = spark.createDataFrame(sorted(oracle(edges)), "node string, component string")
    assertDataFrameEqual(result, expected)


def _persisted(spark) -> set[int]:
    return {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()}


@pytest.mark.parametrize("kind", ["rounds on Spark", "hash collision restart"])
def test_only_the_result_stays_persisted(spark, monkeypatch, kind):
    """Every round's checkpoint is dropped once the maps are composed: only the result holds blocks."""
    if kind == "hash collision restart":
        monkeypatch.setattr(_cc_native, "_string_key", lambda ids: F.xxhash64(F.substring(ids, 1, 1)))
        edges = spark.createDataFrame([(f"a{i}", f"a{i + 1}") for i in range(40)] + [("b1", "b2")], "src string, dst string")
    else:
        edges = spark.createDataFrame([(i, i + 1) for i in range(200)], "src long, dst long")
    before = _persisted(spark)
    result, stats = connected_components_with_stats(edges, engine="native", local_finish_rows=0)
    held = _persisted(spark) - before
    assert stats.rounds > 2
    assert len(held) == 1
    assert result.select("component").distinct().count() == (2 if kind == "hash collision restart" else 1)
    for rdd_id in held:
        spark.sparkContext._jsc.getPersistentRDDs().get(rdd_id).unpersist(False)


def test_empty_edge_list_gives_empty_result_with_schema(spark):
    result = connected_components(spark.createDataFrame([], "src long, dst long"), engine="native")
    assertDataFrameEqual(result, spark.createDataFrame([], "node long, component long"))
    assert result.schema == StructType([StructField("node", LongType()), StructField("component", LongType())])


def test_round_bound_raises_convergence_error_and_rounds_are_logged(spark, caplog):
    chain = spark.createDataFrame([(i, i + 1) for i in range(200)], "src long, dst long")
    with caplog.at_level(logging.INFO, logger="cdp_spark.identity._cc_native"):
        with pytest.raises(ConvergenceError, match="max_rounds=1"):
            connected_components(chain, engine="native", max_rounds=1, local_finish_rows=0)
    assert "connected components round=1 changed=" in caplog.text


def test_missing_id_column_is_a_typed_error(spark):
    with pytest.raises(MissingColumnsError, match="dst"):
        connected_components(spark.createDataFrame([(1, 2)], "src long, target long"))


@pytest.mark.parametrize(
    "kwargs",
    [{"engine": "igraph"}, {"checkpoint": "disk"}, {"max_rounds": 0}, {"local_finish_rows": -1}],
    ids=["unknown_engine", "unknown_checkpoint", "non_positive_max_rounds", "negative_local_finish"],
)
def test_invalid_options_are_config_errors(spark, kwargs):
    with pytest.raises(ConfigError):
        connected_components(spark.createDataFrame([(1, 2)], "src long, dst long"), **kwargs)


def test_graphframes_engine_refused_without_its_jar(spark):
    if detect_capabilities(spark).graphframes:
        pytest.skip("GraphFrames JVM classes are on the classpath")
    with pytest.raises(ConfigError, match="GraphFrames JVM classes are not on the classpath"):
        connected_components(spark.createDataFrame([(1, 2)], "src long, dst long"), engine="graphframes")


def test_graphframes_engine_matches_networkx(spark):
    if not detect_capabilities(spark).graphframes:
        pytest.skip("GraphFrames JVM classes not on the classpath")
    edges = INT_FAMILIES["random_seed7"] + INT_FAMILIES["star_largest_center"] + INT_FAMILIES["self_loops_and_isolated_nodes"]
    result = connected_components(spark.createDataFrame(edges, "src int, dst int"), engine="graphframes")
    assertDataFrameEqual(result, spark.createDataFrame(sorted(oracle(edges)), "node int, component int"))


@pytest.mark.slow
def test_sorted_chain_of_100k_nodes_converges_in_logarithmic_rounds(spark):
    n = 100_000
    chain = spark.range(n - 1).select(F.col("id").alias("src"), (F.col("id") + 1).alias("dst"))
    result, stats = connected_components_with_stats(chain, engine="native", local_finish_rows=0)
    print(f"sorted chain n={n}: rounds={stats.rounds} bound={2 * math.log2(n) + 4:.1f}")
    assert stats.rounds <= 2 * math.log2(n) + 4
    assert result.groupBy("component").count().collect() == [(0, n)]
