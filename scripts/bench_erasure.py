"""Erasure time on an existing lakehouse: ``forget`` for batches of 1, 1,000, ... subjects, one after another.

Subjects are e-mail addresses of CRM records picked from ``silver.pii_contacts`` in a fixed,
seeded order (disjoint between batches, configured junk values and shared addresses left out, so
every subject names one person). Each batch is one ``forget`` call, timed from the call to its
return (resolution, suppression list, deletes in every table, export rewrites, vacuum, erasure
log). Afterwards the script checks that no current row of ``silver.pii_contacts`` or of the
source's bronze table still holds an erased address, and writes the figures as JSON.

The erasures are real: run it on a copy, or on a benchmark lakehouse you can lose.

    .venv/bin/python scripts/bench_erasure.py --config /tmp/bench-1m/cdp.yaml --batches 1 1000 --out erasure.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import functions as F

log = logging.getLogger("bench_erasure")

SOURCE = "crm_customers"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="config of the lakehouse to erase from (a benchmark copy)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 1000], help="subjects per forget call, run in this order")
    p.add_argument("--seed", type=int, default=20261207, help="order in which subjects are picked")
    p.add_argument("--source", default=SOURCE, help="source whose e-mail addresses are erased")
    p.add_argument("--out", type=Path, default=Path("bench-results/erasure.json"))
    return p.parse_args(argv)


def pick_subjects(spark, cfg, *, source: str, count: int, seed: int) -> list[str]:
    """``count`` distinct e-mail subjects of ``source`` records, in a seeded order; each address is on
    exactly one record of the source and is not a configured junk value."""
    from cdp_spark.ops import lake_for

    junk = [v.strip().lower() for v in cfg.identity.junk_values]
    contacts = lake_for(spark, cfg).read("silver", "pii_contacts").where((F.col("source") == source) & F.col("email_norm").isNotNull())
    single = contacts.groupBy("email_norm").agg(F.count(F.lit(1)).alias("n")).where((F.col("n") == 1) & ~F.col("email_norm").isin(*junk))
    rows = single.orderBy(F.xxhash64(F.lit(seed), "email_norm"), "email_norm").limit(count).collect()
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} single-record addresses in silver.pii_contacts of {source}; ask for fewer subjects")
    return [f"email:{r.email_norm}" for r in rows]


def left_behind(spark, cfg, addresses: list[str], *, source: str) -> dict[str, int]:
    """Current rows of ``silver.pii_contacts`` and ``bronze.<source>`` still holding an erased address."""
    from cdp_spark.ops import lake_for
    from cdp_spark.standardize import standardize_email

    lake = lake_for(spark, cfg)
    erased = spark.createDataFrame([(a,) for a in addresses], "address string")
    pii = lake.read("silver", "pii_contacts").join(erased, F.col("email_norm") == F.col("address"), "left_semi").count()
    email_col = next((raw for raw, canonical in next(s for s in cfg.sources if s.name == source).columns.items() if canonical == "email"), "email")
    bronze = lake.read("bronze", source)
    norm = standardize_email(F.col(f"`{email_col}`"), gmail_rule=cfg.silver.gmail_normalization).getField("value")
    held = bronze.select(norm.alias("address")).join(erased, "address", "left_semi").count()
    return {"silver.pii_contacts": pii, f"bronze.{source}": held}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from cdp_spark.config import load_config
    from cdp_spark.privacy import forget
    from cdp_spark.session import build_session

    cfg = load_config(args.config)
    spark = build_session(cfg)
    subjects = pick_subjects(spark, cfg, source=args.source, count=sum(args.batches), seed=args.seed)
    results = []
    start = 0
    for n, size in enumerate(args.batches, 1):
        batch = subjects[start : start + size]
        start += size
        t0 = time.monotonic()
        report = forget(spark, cfg, batch, run_id=f"bench-erasure-{n}-{size}")
        seconds = time.monotonic() - t0
        result = {
            "subjects": size,
            "seconds": round(seconds, 1),
            "customers": report.customers,
            "records": report.records,
            "rows_deleted": sum(report.rows_removed.values()),
            "tables": len(report.rows_removed),
            "files_vacuumed": sum(report.files_vacuumed.values()),
            "suppressed_keys": report.suppressed_keys,
            "blocked_subjects": len(report.blocked_subjects),
            "rows_removed": report.rows_removed,
        }
        results.append(result)
        print(f"{size:>6} subject(s): {seconds:8.1f} s  {report.customers:,} customer(s), {report.records:,} record(s), "
              f"{result['rows_deleted']:,} row(s) from {result['tables']} table(s)", flush=True)
        result["left_behind"] = left_behind(spark, cfg, [s.split(":", 1)[1] for s in batch], source=args.source)
        print(f"        left behind: {result['left_behind']}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    doc = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "config": str(args.config),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "spark": spark.version, "master": spark.sparkContext.master},
        "vacuum_retention_hours": cfg.privacy.vacuum_retention_hours,
        "batches": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")
    left = {t: n for r in results for t, n in r["left_behind"].items() if n}
    if left:
        print(f"erased addresses left behind: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
