"""``cdp demo``: generate a small labelled data set and run every stage on the embedded default."""

from __future__ import annotations

import logging
import shutil
from datetime import date, timedelta
from pathlib import Path

from cdp_spark.config import CdpConfig, load_config

log = logging.getLogger(__name__)


def _local(path: str) -> Path | None:
    return None if "://" in path else Path(path)


def _reset(cfg: CdpConfig, demo_root: Path) -> None:
    for path in (cfg.paths.lakehouse, cfg.paths.checkpoints, cfg.paths.exports, cfg.paths.reports, cfg.paths.mlflow_artifacts, str(demo_root)):
        local = _local(path)
        if local is not None and local.exists():
            shutil.rmtree(local)
    db = cfg.paths.mlflow_tracking_uri
    if db.startswith("sqlite:///"):
        Path(db[len("sqlite:///"):]).unlink(missing_ok=True)


def summary_text(spark, cfg: CdpConfig, results) -> str:
    """Where everything is, after a run: tables per layer with versions and rows, MLflow, reports."""
    from cdp_spark.ops import lake_for

    lake = lake_for(spark, cfg)
    lines = ["", "cdp-spark demo summary", "=" * 22]
    lines += [r.line() for r in results]
    lines.append("")
    lines.append(f"Lakehouse (Delta, engine={lake.engine_name}): {cfg.paths.lakehouse}")
    for layer in ("bronze", "silver", "gold", "ops"):
        for name in lake.tables(layer):
            version = lake.version(layer, name)
            rows = lake.read(layer, name).count()
            lines.append(f"  {layer}.{name:<28} version={version:<3} rows={rows:>9,}  {lake.path(layer, name)}")
    for result in results:
        for key, value in sorted(result.details.items()):
            if key in ("segment_sizes", "exports", "data_docs", "models", "report"):
                lines.append(f"{result.stage} {key}: {value}")
    lines += truth_lines(spark, cfg)
    lines.append("")
    lines.append(f"MLflow tracking store: {cfg.paths.mlflow_tracking_uri}")
    lines.append(f"  open the UI with: .venv/bin/mlflow ui --backend-store-uri {cfg.paths.mlflow_tracking_uri}")
    lines.append("Read any table with plain delta-rs: python -c \"import deltalake; print(deltalake.DeltaTable('"
                 + lake.path("gold", "customer_profile") + "').to_pandas().head())\"")
    return "\n".join(lines)


def truth_lines(spark, cfg: CdpConfig) -> list[str]:
    """Identity and churn quality against the generator's ground truth, when the landing data has it."""
    from cdp_spark.evaluation import churn_auc_vs_oracle, identity_quality
    from cdp_spark.ops import lake_for

    landing = _local(cfg.paths.landing)
    truth = landing.parent / "truth" if landing is not None else None
    lake = lake_for(spark, cfg)
    if truth is None or not (truth / "records.parquet").exists() or not lake.exists("gold", "identity_map"):
        return []
    records = spark.read.parquet(str(truth / "records.parquet"))
    identity_map = lake.read("gold", "identity_map")
    quality = identity_quality(identity_map, records)
    lines = [
        "",
        f"Against the generator's truth ({truth}):",
        f"  identity: pairwise precision {quality['precision']:.4f} (true persons), recall {quality['recall_linkable']:.4f} "
        f"(records linkable by identifiers), recall {quality['recall_person']:.4f} (true persons, incl. never-linked anonymous visits)",
    ]
    if lake.exists("gold", "customer_scores") and (truth / "people.parquet").exists():
        auc = churn_auc_vs_oracle(lake.read("gold", "customer_scores"), identity_map, records, spark.read.parquet(str(truth / "people.parquet")))
        lines.append(
            f"  churn model ROC-AUC {auc['model_auc']:.4f} vs oracle (true churn probabilities) {auc['oracle_auc']:.4f}: "
            f"ratio {auc['ratio']:.3f} over {auc['persons']:,} persons"
        )
    return lines


def run_demo(*, config_path: str, customers: int, seed: int, fresh: bool) -> int:
    from cdp_spark.pipeline import run_pipeline
    from cdp_spark.session import build_session
    from cdp_spark.synthetic import generate

    cfg = load_config(config_path)
    landing = _local(cfg.paths.landing)
    if landing is None:
        raise SystemExit("cdp demo needs a local paths.landing; use `cdp run` for object stores")
    demo_root = landing.parent
    if fresh:
        _reset(cfg, demo_root)
    if not landing.exists():
        # A year of history ending yesterday, so recency, churn windows and TTLs look like production.
        start = date.today() - timedelta(days=366)
        report = generate(demo_root, customers=customers, seed=seed, days=365, start=start.isoformat())
        print(report.summary(), flush=True)
    else:
        log.info("reusing demo data in %s (use --fresh to regenerate)", demo_root)
    spark = build_session(cfg)
    results = run_pipeline(spark, cfg, on_result=lambda r: print(r.line(), flush=True))
    print(summary_text(spark, cfg, results), flush=True)
    from cdp_spark.reporting import build_run_report

    report = build_run_report(spark, cfg, results[0].run_id)
    print(f"Run report (open in a browser): {report}")
    data_docs = Path(cfg.paths.reports) / "data_docs" / "index.html"
    if data_docs.exists():
        print(f"Great Expectations Data Docs: {data_docs}")
    return 0 if all(r.status == "succeeded" for r in results) else 1
