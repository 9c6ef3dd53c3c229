"""Why are two records one customer? The chain of identity-graph edges that joins them."""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass

from pyspark.sql import functions as F

from cdp_spark.errors import CdpError
from cdp_spark.identity.graph import node_col

log = logging.getLogger(__name__)

MAX_EXPLAIN_EDGES = 200_000  # the component-size alarm keeps real components far below this


@dataclass(frozen=True)
class Step:
    from_node: str
    to_node: str
    rule: str
    sources: tuple[str, ...]
    first_seen: str | None
    last_seen: str | None
    records: int
    match_probability: float | None = None  # probabilistic edges: Splink's match probability
    match_weight: float | None = None  # ... its total match weight
    comparisons: tuple[dict, ...] = ()  # ... and per comparison: {comparison, level, match_weight, bayes_factor}

    def describe(self) -> str:
        short = lambda n: n if n.startswith("record:") else n.split(":", 1)[0] + ":" + n.split(":", 1)[1][:12] + "…"  # noqa: E731
        text = f"{short(self.from_node)} —[{self.rule} via {', '.join(self.sources)}; {self.records} record(s), {self.first_seen} … {self.last_seen}]→ {short(self.to_node)}"
        if self.match_weight is not None:
            parts = ", ".join(f"{c['comparison']}={c['level']} ({c['match_weight']:+.1f})" for c in self.comparisons)
            text += f"\n    match probability {self.match_probability:.4f}, weight {self.match_weight:+.1f}: {parts}"
        return text


def _record_nodes(lake, source: str, record_id: str) -> tuple[str, list[str]]:
    """(customer_uid, graph nodes of the record)."""
    mapped = lake.read("gold", "identity_map").where((F.col("source") == source) & (F.col("record_id") == record_id)).select("customer_uid").first()
    if mapped is None:
        raise CdpError(f"record {source}:{record_id} is not in gold.identity_map (unknown record, or it carries no identifier)")
    ids = lake.read("silver", "identifiers").where((F.col("source") == source) & (F.col("record_id") == record_id))
    nodes = [r["node"] for r in ids.select(node_col().alias("node")).distinct().collect()]
    return mapped["customer_uid"], nodes + [lake_record_node(source, record_id)]


def lake_record_node(source: str, record_id: str) -> str:
    return f"record:{source}:{record_id}"


def explain_records(lake, a: tuple[str, str], b: tuple[str, str]) -> list[Step]:
    """The shortest chain of edges joining records ``a`` and ``b`` (each ``(source, record_id)``).

    Raises ``CdpError`` when they are not in one customer. Only the edges of that one customer
    reach the driver (bounded by MAX_EXPLAIN_EDGES).
    """
    uid_a, nodes_a = _record_nodes(lake, *a)
    uid_b, nodes_b = _record_nodes(lake, *b)
    if uid_a != uid_b:
        raise CdpError(f"{a[0]}:{a[1]} is customer {uid_a} and {b[0]}:{b[1]} is customer {uid_b}: they are not merged")
    edges = lake.read("gold", "identity_edges").where((F.col("customer_uid") == uid_a) & (F.col("src") != F.col("dst")))
    rows = edges.limit(MAX_EXPLAIN_EDGES + 1).collect()
    if len(rows) > MAX_EXPLAIN_EDGES:
        raise CdpError(f"customer {uid_a} has more than {MAX_EXPLAIN_EDGES} edges; inspect gold.identity_edges directly")
    adjacency: dict[str, list] = {}
    for r in rows:
        adjacency.setdefault(r["src"], []).append((r["dst"], r))
        adjacency.setdefault(r["dst"], []).append((r["src"], r))
    targets = set(nodes_b)
    start = [n for n in nodes_a if n in adjacency or n in targets]
    shared = targets.intersection(nodes_a)
    if shared:
        node = sorted(shared)[0]
        return [Step(node, node, "same identifier on both records", (a[0], b[0]), None, None, 2)]
    parents: dict[str, tuple[str, object] | None] = {n: None for n in start}
    queue = deque(start)
    while queue:
        node = queue.popleft()
        if node in targets:
            return _path(node, parents)
        for nxt, row in adjacency.get(node, []):
            if nxt not in parents:
                parents[nxt] = (node, row)
                queue.append(nxt)
    raise CdpError(f"no path between {a} and {b} in customer {uid_a}'s edges (was the graph rebuilt since?)")


def _path(end: str, parents: dict) -> list[Step]:
    steps = []
    node = end
    while parents[node] is not None:
        prev, row = parents[node]
        fields = row.asDict()
        weight = fields.get("match_weight")
        steps.append(Step(
            prev, node, row["rule"], (row["source"],), str(row["first_seen"]), str(row["last_seen"]), int(row["records"]),
            match_probability=float(row["confidence"]) if weight is not None else None,
            match_weight=float(weight) if weight is not None else None,
            comparisons=tuple(json.loads(fields["explanation"])) if weight is not None and fields.get("explanation") else (),
        ))
        node = prev
    return list(reversed(steps))
