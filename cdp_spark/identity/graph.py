"""The identity graph: identifiers are nodes, co-occurrence on a record is an edge.

Nodes are ``"<id_type>:<id_key>"`` strings (``id_key`` is the keyed hash from silver, never a raw
value). Each record with k usable identifiers contributes k-1 edges (a star from its strongest
identifier, not a clique, so nothing grows with the square of a record's identifiers); a record
whose identifiers were all blocklisted keeps a node of its own so it still gets a customer ID.

Over-merge defence happens here, before connected components:

* configured junk values (``identity.junk_values``, hashed the same way as silver) are blocklisted;
* an identifier that co-occurs with more distinct known customers (``customer_id`` nodes) than its
  type's cap (``identity.per_type_caps``) is shared (a family tablet, a call-centre phone) and is
  blocklisted, as is any identifier seen on more than ``identity.junk_max_records`` records that
  carry other identifiers of more than one customer;
* every step is a group-by over nodes or records: nothing pairs the members of a component.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import IdentityConfig
from cdp_spark.errors import MissingColumnsError

log = logging.getLogger(__name__)

# Strongest first: a record's star is centred on its strongest identifier, and a record whose
# identifiers fall into different components is placed by the strongest.
TYPE_PRIORITY: tuple[str, ...] = ("customer_id", "email", "phone", "loyalty_id", "national_id", "legacy_id", "device_id", "cookie_id")
IDENTIFIER_COLUMNS = ("source", "record_id", "id_type", "id_key", "anonymous", "seen_at")
# Identifiers that belong to one person. Phones, devices and cookies are often shared by a household.
STRONG_TYPES: tuple[str, ...] = ("customer_id", "email", "loyalty_id", "national_id", "legacy_id")
EDGE_COLUMNS = ("src", "dst", "rule", "confidence", "source", "first_seen", "last_seen", "records")
# Edge rules as strong as a shared strong identifier: a person-level Splink match and the link of a
# matched record node to its record's own identifier.
STRONG_RULES: tuple[str, ...] = ("probabilistic", "record")


def node_col(id_type: Column | str = "id_type", id_key: Column | str = "id_key") -> Column:
    t = F.col(id_type) if isinstance(id_type, str) else id_type
    k = F.col(id_key) if isinstance(id_key, str) else id_key
    return F.concat(t, F.lit(":"), k)


def record_node(source: Column | str = "source", record_id: Column | str = "record_id") -> Column:
    s = F.col(source) if isinstance(source, str) else source
    r = F.col(record_id) if isinstance(record_id, str) else record_id
    return F.concat(F.lit("record:"), s, F.lit(":"), r)


def _priority(col: Column) -> Column:
    expr = F.lit(len(TYPE_PRIORITY))
    for rank, name in reversed(list(enumerate(TYPE_PRIORITY))):
        expr = F.when(col == name, F.lit(rank)).otherwise(expr)
    return expr


def _require(df: DataFrame, cols: Sequence[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingColumnsError(missing, where)


def junk_nodes(spark: SparkSession, junk_values: Sequence[str], key: bytes) -> DataFrame:
    """``node``: configured junk values (``identity.junk_values``) hashed as silver hashes identifiers,
    for every type they could be."""
    from cdp_spark.privacy.pseudonymize import keyed_hash

    rows = [(t, v.strip().lower()) for v in junk_values for t in ("email", "phone", "device_id", "cookie_id", "loyalty_id", "customer_id")]
    df = spark.createDataFrame(rows, "id_type string, value string")
    return df.select(node_col(F.col("id_type"), keyed_hash(F.concat(F.col("id_type"), F.lit(":"), F.col("value")), key)).alias("node"))


def blocklist(identifiers: DataFrame, cfg: IdentityConfig, junk_keys: DataFrame | None = None) -> DataFrame:
    """Nodes to keep out of the graph, with a reason: ``node, id_type, reason, customers, records``.

    ``junk_keys`` holds ``node`` values of configured junk identifiers (hashed by the caller).
    """
    _require(identifiers, IDENTIFIER_COLUMNS, "silver.identifiers")
    ids = identifiers.select("source", "record_id", "id_type", node_col().alias("node"))
    customers = ids.where(F.col("id_type") == "customer_id").select("source", "record_id", F.col("node").alias("customer_node"))
    # silver.identifiers holds one row per record x identifier type, so a record holds a node once
    # and has at most one customer node: counting rows per (node, customer node), then customer
    # nodes and rows per node, gives distinct customers and records without countDistinct (whose
    # Expand would shuffle every row once per distinct aggregate).
    stats = (
        ids.join(customers, ["source", "record_id"], "left")
        .groupBy("node", "id_type", "customer_node")
        .agg(F.count(F.lit(1)).alias("rows"))
        .groupBy("node", "id_type")
        .agg(F.count("customer_node").alias("customers"), F.sum("rows").alias("records"))
    )
    caps = cfg.per_type_caps
    cap_expr = F.lit(None).cast("int")
    for id_type, cap in caps.items():
        cap_expr = F.when(F.col("id_type") == id_type, F.lit(cap)).otherwise(cap_expr)
    shared = stats.where(
        (F.col("id_type") != "customer_id")
        & (
            (cap_expr.isNotNull() & (F.col("customers") > cap_expr))
            | ((F.col("records") > cfg.junk_max_records) & (F.col("customers") > 1))
        )
    ).select(
        "node",
        "id_type",
        F.concat(F.lit("shared by "), F.col("customers").cast("string"), F.lit(" customers on "), F.col("records").cast("string"), F.lit(" records")).alias("reason"),
        "customers",
        "records",
    )
    if junk_keys is None:
        return shared
    junk = junk_keys.join(stats, "node", "inner").select(
        "node", "id_type", F.lit("configured junk value").alias("reason"), "customers", "records"
    )
    return junk.unionByName(shared.join(junk.select("node"), "node", "left_anti"))


def build_edges(identifiers: DataFrame, blocked: DataFrame, link_types: dict[tuple[str, str], float] | None = None) -> DataFrame:
    """Edges with provenance from silver identifiers minus blocklisted nodes.

    Returns ``src, dst, rule, confidence, source, first_seen, last_seen, records``; a self-loop
    (``src == dst``) carries a node that has no other link (isolated identifiers and records whose
    identifiers were all blocklisted). ``link_types`` optionally restricts which type pairs link,
    with their confidence (config ``identity.link_rules``); by default every pair links at 1.0.
    """
    _require(identifiers, IDENTIFIER_COLUMNS, "silver.identifiers")
    ids = identifiers.select(
        "source", "record_id", "id_type", "seen_at", node_col().alias("node"), _priority(F.col("id_type")).alias("prio")
    ).join(blocked.select("node"), "node", "left_anti")
    # The record's hub: its strongest identifier (ties broken by node id, deterministic).
    hub = ids.groupBy("source", "record_id").agg(F.min(F.struct("prio", "node", "id_type")).alias("hub"), F.count(F.lit(1)).alias("n_ids"))
    # Spokes from the hub; the hub's own self-loop only where it is the record's single identifier.
    spokes = ids.join(hub, ["source", "record_id"]).where((F.col("node") != F.col("hub.node")) | (F.col("n_ids") == 1)).select(
        "source",
        "record_id",
        "seen_at",
        F.col("hub.node").alias("a"),
        F.col("hub.id_type").alias("a_type"),
        F.col("node").alias("b"),
        F.col("id_type").alias("b_type"),
    )
    rule = F.when(F.col("a") == F.col("b"), F.lit("self")).otherwise(F.concat(F.col("a_type"), F.lit("~"), F.col("b_type")))
    confidence = F.lit(1.0)
    if link_types:
        confidence = F.lit(None).cast("double")
        for (t1, t2), conf in link_types.items():
            match = ((F.col("a_type") == t1) & (F.col("b_type") == t2)) | ((F.col("a_type") == t2) & (F.col("b_type") == t1))
            confidence = F.when(match, F.lit(conf)).otherwise(confidence)
        confidence = F.when(F.col("a") == F.col("b"), F.lit(1.0)).otherwise(confidence)
    linked = spokes.withColumn("rule", rule).withColumn("confidence", confidence)
    # A pair that does not link under the rules still keeps both nodes (as self-loops).
    unlinked = linked.where(F.col("confidence").isNull())
    loops = unlinked.select("source", "seen_at", F.col("b").alias("a"), F.col("b"), F.lit("self").alias("rule"), F.lit(1.0).alias("confidence"))
    linked = linked.where(F.col("confidence").isNotNull()).select("source", "seen_at", "a", "b", "rule", "confidence").unionByName(loops)
    # Records left with no identifier at all still get a node of their own.
    orphans = (
        identifiers.select("source", "record_id", "seen_at")
        .join(ids.select("source", "record_id").distinct(), ["source", "record_id"], "left_anti")
        .select("source", "seen_at", record_node().alias("a"), record_node().alias("b"), F.lit("self").alias("rule"), F.lit(1.0).alias("confidence"))
    )
    all_edges = linked.unionByName(orphans)
    ordered = all_edges.select(
        F.least("a", "b").alias("src"), F.greatest("a", "b").alias("dst"), "rule", "confidence", "source", "seen_at"
    )
    return ordered.groupBy("src", "dst", "rule", "source").agg(
        F.max("confidence").alias("confidence"),
        F.min("seen_at").alias("first_seen"),
        F.max("seen_at").alias("last_seen"),
        F.count(F.lit(1)).alias("records"),
    ).select(*EDGE_COLUMNS)


def record_components(identifiers: DataFrame, blocked: DataFrame, components: DataFrame) -> DataFrame:
    """``source, record_id, component`` for every record: the component of its strongest usable
    identifier, or of its own record node when all its identifiers were blocklisted."""
    ids = identifiers.select("source", "record_id", "id_type", node_col().alias("node"), _priority(F.col("id_type")).alias("prio")).join(
        blocked.select("node"), "node", "left_anti"
    )
    strongest = ids.groupBy("source", "record_id").agg(F.min(F.struct("prio", "node")).alias("s")).select(
        "source", "record_id", F.col("s.node").alias("node")
    )
    everyone = identifiers.select("source", "record_id").distinct()
    placed = everyone.join(strongest, ["source", "record_id"], "left").withColumn(
        "node", F.coalesce(F.col("node"), record_node())
    )
    return placed.join(components, "node", "inner").select("source", "record_id", "node", "component")


def prune_weak_links(edges: DataFrame, components: DataFrame, cc) -> tuple[DataFrame, DataFrame]:
    """Re-resolve components that hold more than one customer account using strong edges only.

    Two accounts in one component are either one person's duplicate accounts (joined by a strong
    identifier such as an email) or two people chained through a shared household phone or device.
    Recomputing those components on edges between strong identifiers (and edges of ``STRONG_RULES``,
    person-level probabilistic matches) keeps the first and splits the
    second; every node of such a component keeps a node of its own (a self-loop), so nothing is lost.
    Only the suspect components are recomputed. ``cc`` is the connected-components function.
    Returns ``(components, suspects)`` where ``suspects`` lists the recomputed component ids.
    """
    accounts = components.where(F.col("node").startswith("customer_id:")).groupBy("component").agg(F.count(F.lit(1)).alias("accounts"))
    suspects = accounts.where(F.col("accounts") > 1).select("component")
    if suspects.isEmpty():
        return components, suspects
    strong = (
        F.split(F.col("src"), ":").getItem(0).isin(*STRONG_TYPES) & F.split(F.col("dst"), ":").getItem(0).isin(*STRONG_TYPES)
    ) | F.col("rule").isin(*STRONG_RULES)
    in_suspect = edges.join(components.select(F.col("node").alias("src"), "component"), "src").join(F.broadcast(suspects), "component")
    nodes = components.join(F.broadcast(suspects), "component").select(F.col("node").alias("src"), F.col("node").alias("dst"))
    sub_edges = in_suspect.where(strong & (F.col("src") != F.col("dst"))).select("src", "dst").unionByName(nodes)
    recomputed = cc(sub_edges)
    kept = components.join(F.broadcast(suspects), "component", "left_anti")
    return kept.unionByName(recomputed.select("node", "component")), suspects
