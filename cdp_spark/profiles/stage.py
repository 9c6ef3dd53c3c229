"""The gold stage: profile → features → segments → activation exports.

Order of work: read inputs, build profile and features, validate every segment condition and every
export definition (a bad one fails here, before anything is written), then write
``gold.customer_profile``, ``gold.customer_features`` (the run's cutoff), upsert the changes of
``gold.segment_membership``, write the exports and ``gold.export_state``.

The run's as-of date is ``run_date`` or, without one, the day after the last event (so the last
day's events count); the feature cutoff is the same date (features see events strictly before it).
Records of sources without an event time are undated in gold (:func:`with_observation_times`).
Membership changes are stamped with the as-of date at 00:00 UTC when ``run_date`` is given, else
with the wall-clock time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig, SourceConfig
from cdp_spark.errors import CdpError
from cdp_spark.faults import fault_point
from cdp_spark.ops import lake_for
from cdp_spark.profiles.features import build_features
from cdp_spark.profiles.profile import ProfileInputs, build_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldReport:
    rows_in: int
    rows_out: int
    as_of: date
    segment_sizes: dict[str, int] = field(default_factory=dict)
    segment_changes: dict[str, dict[str, int]] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    export_rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "segment_sizes": dict(self.segment_sizes),
            "segment_changes": {k: dict(v) for k, v in self.segment_changes.items()},
            "exports": dict(self.exports),
            "export_rows": dict(self.export_rows),
        }


def with_observation_times(records: DataFrame, sources: Sequence[SourceConfig]) -> DataFrame:
    """``silver.customer_records`` with ``updated_at`` NULL for sources without an ``event_time_column``.

    Silver orders such a source's versions by their ingestion time, which it keeps in ``updated_at``;
    that says when a file arrived, not when the person's data changed. Gold treats those records as
    undated: they do not move the default as-of date to the day of the last ingestion, they are not
    cut off as "after the as-of date", and survivorship ranks them as the oldest observation.
    """
    undated = sorted(src.name for src in sources if not src.event_time_column)
    if not undated:
        return records
    return records.withColumn("updated_at", F.when(~F.col("source").isin(*undated), F.col("updated_at")))


def as_of_date(inputs: ProfileInputs, run_date: date | None) -> date:
    """``run_date`` or, without one, the day after the last dated order, interaction or record update."""
    if run_date is not None:
        return run_date
    last = (
        inputs.orders.select(F.max("order_ts").alias("t"))
        .unionByName(inputs.interactions.select(F.max("event_ts").alias("t")))
        .unionByName(inputs.records.select(F.max("updated_at").alias("t")))
        .agg(F.max("t").alias("t"))
        .first()["t"]
    )
    if last is None:
        raise CdpError("gold: silver has no dated orders, interactions or records; run bronze and silver first, or pass --run-date")
    return last.date() + timedelta(days=1)


def run_gold(spark: SparkSession, cfg: CdpConfig, *, run_id: str, run_date: date | None = None) -> GoldReport:
    """Build and write gold (see the module docstring); a bad segment or export fails before any write."""
    from cdp_spark.activation import check_export, contact_rows, run_exports
    from cdp_spark.segments import evaluate_segments, membership_updates, segment_changes, segment_frame, validate_segments
    from cdp_spark.segments.membership import MEMBERSHIP_KEYS

    lake = lake_for(spark, cfg, run_id=run_id, stage="gold")
    gold = cfg.gold
    inputs = ProfileInputs(
        records=with_observation_times(lake.read("silver", "customer_records"), cfg.sources),
        identifiers=lake.read("silver", "identifiers"),
        interactions=lake.read("silver", "interactions"),
        orders=lake.read("silver", "orders"),
        consents=lake.read("silver", "consents"),
        identity_map=lake.read("gold", "identity_map"),
    )
    as_of = as_of_date(inputs, run_date)
    at = datetime.combine(run_date, time()) if run_date else datetime.now(timezone.utc).replace(tzinfo=None)
    log.info("gold as_of=%s run_id=%s", as_of, run_id)

    profile = build_profile(inputs, rules=gold.survivorship, as_of=as_of, session_gap_minutes=gold.session_gap_minutes)
    features = build_features(
        inputs.orders, inputs.interactions, inputs.identity_map, inputs.records, cutoff=as_of, session_gap_minutes=gold.session_gap_minutes
    )
    frame = segment_frame(profile, features)
    validate_segments(frame, gold.segments)
    segment_names = [s.name for s in gold.segments]
    for dest in gold.exports:
        check_export(dest, profile_columns=profile.columns, segments=segment_names)

    profile = profile.localCheckpoint()
    features = features.localCheckpoint()
    rows_in = inputs.identity_map.count()
    written = lake.overwrite("gold", "customer_profile", profile)
    fault_point("gold.after_profile")
    lake.overwrite("gold", "customer_features", features)

    members = evaluate_segments(segment_frame(profile, features), gold.segments).localCheckpoint()
    history = lake.read("gold", "segment_membership") if lake.exists("gold", "segment_membership") else None
    updates = membership_updates(history, members, run_id=run_id, at=at).localCheckpoint()
    lake.upsert("gold", "segment_membership", updates, keys=list(MEMBERSHIP_KEYS))
    sizes = {name: 0 for name in segment_names}
    sizes.update({r["segment"]: int(r["n"]) for r in members.groupBy("segment").agg(F.count(F.lit(1)).alias("n")).collect()})
    changes: dict[str, dict[str, int]] = {}
    for r in segment_changes(updates, run_id).groupBy("segment", "change").agg(F.count(F.lit(1)).alias("n")).collect():
        changes.setdefault(r["segment"], {})[r["change"]] = int(r["n"])

    results = []
    if gold.exports:
        contacts = contact_rows(lake.read("silver", "pii_contacts"), inputs.identifiers, inputs.identity_map, inputs.consents)
        previous: DataFrame | None = lake.read("gold", "export_state") if lake.exists("gold", "export_state") else None
        results, state = run_exports(profile, members, contacts, previous, gold.exports, root=cfg.paths.exports, run_id=run_id, at=at)
        lake.overwrite("gold", "export_state", state.localCheckpoint())

    rows_out = written.rows_written if written.rows_written is not None else profile.count()
    log.info("gold: %d profiles, segments %s, exports %s", rows_out, sizes, {r.destination: r.rows for r in results})
    return GoldReport(
        rows_in=rows_in,
        rows_out=rows_out,
        as_of=as_of,
        segment_sizes=sizes,
        segment_changes=changes,
        exports={r.destination: r.path for r in results},
        export_rows={r.destination: r.rows for r in results},
    )
