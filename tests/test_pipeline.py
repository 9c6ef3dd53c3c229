"""End to end: every stage on a small generated data set, checked from the outside."""

import ast
from pathlib import Path

import deltalake
import pytest
from pyspark.sql import functions as F

from cdp_spark.evaluation import pairwise_metrics
from cdp_spark.identity.resolve import HISTOGRAM_BUCKETS
from cdp_spark.ops import lake_for
from cdp_spark.pipeline import STAGES, run_stage


def test_every_stage_succeeds_and_writes_delta_tables(demo_run):
    cfg, _, results = demo_run
    assert [(r.stage, r.status) for r in results] == [(s, "succeeded") for s in STAGES], [r.error for r in results]
    root = Path(cfg.paths.lakehouse)
    for layer, table in [("bronze", "crm_customers"), ("bronze", "web_events"), ("silver", "identifiers"), ("silver", "orders"),
                         ("gold", "identity_map"), ("gold", "customer_profile"), ("gold", "customer_scores"), ("ops", "run_log")]:
        assert (root / layer / table / "_delta_log").is_dir(), f"{layer}.{table} is not a Delta table"
        assert deltalake.DeltaTable(str(root / layer / table)).to_pyarrow_table().num_rows > 0


def test_identity_map_covers_every_truth_record_and_matches_linkable_groups(demo_run, spark):
    cfg, _, _ = demo_run
    truth = spark.read.parquet(str(Path(cfg.paths.landing).parent / "truth" / "records.parquet"))
    identity_map = spark.createDataFrame(deltalake.DeltaTable(str(Path(cfg.paths.lakehouse) / "gold" / "identity_map")).to_pandas())
    assert truth.join(identity_map, ["source", "record_id"], "left_anti").count() == 0
    # Probabilistic edges rightly join records that share no identifier (beyond linkable_group):
    # precision is judged against the true person, recall against what exact identifiers can link.
    precision = pairwise_metrics(identity_map, truth, true_cluster="person_id")["precision"]
    recall = pairwise_metrics(identity_map, truth, true_cluster="linkable_group")["recall"]
    assert precision >= 0.995 and recall >= 0.98, (precision, recall)


def test_probabilistic_edges_join_legacy_records_and_explain_with_match_weights(demo_run, spark, capsys):
    from cdp_spark.cli import main
    from cdp_spark.identity.explain import explain_records

    cfg, config_path, _ = demo_run
    lake = lake_for(spark, cfg)
    edges = lake.read("gold", "identity_edges").where(F.col("rule") == "probabilistic")
    pair = edges.where(F.col("src").startswith("record:crm_customers:") & F.col("dst").startswith("record:legacy_customers:")).first()
    assert pair is not None, "no CRM-legacy probabilistic edge"
    a = tuple(pair["src"].split(":", 2)[1:])
    b = tuple(pair["dst"].split(":", 2)[1:])

    steps = explain_records(lake, a, b)

    matched = [s for s in steps if s.rule == "probabilistic"]
    assert len(matched) == 1 and matched[0].match_probability >= cfg.identity.probabilistic.match_probability
    assert {c["comparison"] for c in matched[0].comparisons} == {"first_key", "last_key", "dob", "address"}
    # the comparisons' weights sum to the total minus the prior's (negative: matches are rare)
    assert sum(c["match_weight"] for c in matched[0].comparisons) > matched[0].match_weight

    capsys.readouterr()
    assert main(["explain", "--config", str(config_path), ":".join(a), ":".join(b)]) == 0
    printed = capsys.readouterr().out
    assert "probabilistic via crm_customers+legacy_customers" in printed and "match probability" in printed, printed


def test_rerunning_identity_on_unchanged_data_keeps_every_customer_id(demo_run, spark):
    cfg, _, results = demo_run
    lake = lake_for(spark, cfg)
    before = lake.read("gold", "identity_map").localCheckpoint()  # the caller's own: must survive the stage
    persisted = {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()}
    result = run_stage(spark, cfg, "identity", run_id="demo-rerun")
    assert result.status == "succeeded", result.error
    # the stage's caches and checkpoints are released; nothing of the caller's is
    assert {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()} <= persisted
    after = lake.read("gold", "identity_map")
    changed = before.join(after.withColumnRenamed("customer_uid", "uid_after"), ["source", "record_id"]).where(F.col("customer_uid") != F.col("uid_after"))
    assert changed.count() == 0
    assert after.count() == before.count()
    # same data, same metrics row, histogram text included (stored in bucket order, not collect() order)
    metrics = {r["run_id"]: r.asDict() for r in lake.read("gold", "identity_metrics").drop("computed_at").collect()}
    rerun, first = metrics["demo-rerun"], metrics[results[0].run_id]
    assert {**first, "run_id": "demo-rerun"} == rerun
    buckets = list(ast.literal_eval(rerun["size_histogram"]))
    assert buckets == [b for b in HISTOGRAM_BUCKETS if b in buckets]


def test_champions_are_registered_and_scores_carry_model_versions(demo_run, spark):
    import mlflow

    cfg, _, _ = demo_run
    mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    for task in ("churn", "propensity"):
        version = client.get_model_version_by_alias(f"{cfg.models.registered_prefix}_{task}", "champion")
        assert str(version.version) == "1"
    scores = lake_for(spark, cfg).read("gold", "customer_scores")
    row = scores.select("churn_model", "propensity_model", "run_id").distinct().collect()
    assert [(r["churn_model"], r["propensity_model"], r["run_id"]) for r in row] == [("cdp_churn/1", "cdp_propensity/1", "demo-run")]
    assert scores.where(F.col("churn_probability").isNull() | F.col("propensity_probability").isNull()).count() == 0
    assert scores.where(F.col("clv").isNotNull()).count() > 0


def test_a_challenger_that_does_not_beat_the_champion_on_the_same_holdout_is_not_promoted(demo_run, spark, tmp_path):
    import mlflow

    from cdp_spark.config import load_config

    cfg, config_path, _ = demo_run
    strict = tmp_path / "strict.yaml"  # a challenger must gain 0.5 ROC-AUC: impossible
    strict.write_text(f"include: [{config_path}]\nmodels: {{min_improvement: 0.5, gbt_max_iter: 3}}\n")
    cfg2 = load_config(strict)
    client = mlflow.MlflowClient(tracking_uri=cfg.paths.mlflow_tracking_uri)
    before = {t: client.get_model_version_by_alias(f"{cfg.models.registered_prefix}_{t}", "champion").version for t in ("churn", "propensity")}

    result = run_stage(spark, cfg2, "train", run_id="challenger-run")

    assert result.status == "succeeded", result.error
    for task in ("churn", "propensity"):
        name = f"{cfg.models.registered_prefix}_{task}"
        trained = result.details["models"][task]
        assert trained["promoted"] is False
        assert client.get_model_version_by_alias(name, "champion").version == before[task]
        challenger = client.get_model_version(name, trained["version"])
        assert str(challenger.version) != str(before[task])
        assert challenger.tags["decision"].startswith(f"challenger (champion v{before[task]} auc=")


def test_churn_model_auc_is_reported_beside_the_oracle_auc(demo_run, spark):
    from cdp_spark.demo import truth_lines
    from cdp_spark.evaluation import churn_auc_vs_oracle

    cfg, _, _ = demo_run
    lake = lake_for(spark, cfg)
    truth = Path(cfg.paths.landing).parent / "truth"
    auc = churn_auc_vs_oracle(
        lake.read("gold", "customer_scores"), lake.read("gold", "identity_map"),
        spark.read.parquet(str(truth / "records.parquet")), spark.read.parquet(str(truth / "people.parquet")),
    )
    assert auc["persons"] > 100
    assert 0.5 < auc["oracle_auc"] <= 1.0
    assert auc["model_auc"] > 0.5  # better than chance; the demo prints the ratio to the oracle
    assert any("vs oracle" in line for line in truth_lines(spark, cfg))


def test_rerunning_bronze_over_the_same_landing_files_ingests_nothing(demo_run, spark):
    cfg, _, _ = demo_run
    lake = lake_for(spark, cfg)
    versions = {s.name: lake.version("bronze", s.name) for s in cfg.sources}
    result = run_stage(spark, cfg, "bronze", run_id="demo-bronze-rerun")
    assert result.status == "succeeded" and result.rows_out == 0
    assert {s.name: lake.version("bronze", s.name) for s in cfg.sources} == versions


@pytest.mark.parametrize("stage", STAGES)
def test_spark_submit_entry_point_exists_for_every_stage(stage):
    job = Path(__file__).resolve().parents[1] / "jobs" / f"{stage}.py"
    assert f'stage_main("{stage}"' in job.read_text()


def _tables(root: Path) -> list[Path]:
    return [t for t in sorted(p.parent for p in root.glob("*/*/_delta_log")) if t.parent.name in ("bronze", "silver", "gold")]


def _subject_rows(frame, table: str, records: set[tuple[str, str]], uid: str, markers: set[str]) -> int:
    """Rows of a bronze/silver/gold table (a pandas frame) that are the subject's: one of their records
    (bronze: the table's own ``_record_key``), their customer uid, or text holding a marker."""
    layer, name = table.split(".", 1)
    hit = frame.astype(str).agg(" ".join, axis=1).str.lower().apply(lambda t: any(m in t for m in markers))
    if layer == "bronze" and "_record_key" in frame:
        hit |= frame["_record_key"].apply(lambda k: (name, k) in records)
    if {"source", "record_id"} <= set(frame.columns):
        hit |= [(s, r) in records for s, r in zip(frame["source"], frame["record_id"])]
    if "customer_uid" in frame:
        hit |= frame["customer_uid"] == uid
    return int(hit.sum())


def _tables_holding(root: Path, records: set[tuple[str, str]], uid: str, markers: set[str]) -> dict[str, int]:
    """Per bronze/silver/gold table with any: the subject's rows in its current version."""
    found = {}
    for table in _tables(root):
        label = f"{table.parent.name}.{table.name}"
        found[label] = _subject_rows(deltalake.DeltaTable(str(table)).to_pandas(), label, records, uid, markers)
    return {t: n for t, n in found.items() if n}


def _files_holding(root: Path, records: set[tuple[str, str]], uid: str, markers: set[str]) -> list[str]:
    """Data files on disk (live or not) holding a row of the subject."""
    import pyarrow.parquet as pq

    return [
        str(file.relative_to(root))
        for table in _tables(root)
        for file in sorted(table.rglob("*.parquet"))
        if _subject_rows(pq.read_table(file).to_pandas(), f"{table.parent.name}.{table.name}", records, uid, markers)
    ]


def _export_rows_holding(exports: Path, uid: str, hashes: set[str]) -> list[str]:
    import csv

    hits = []
    for data in sorted(exports.rglob("part-*.csv")):
        with data.open() as fh:
            hits += [str(data) for row in csv.DictReader(fh) if row.get("customer_uid") == uid or hashes & set(row.values())]
    return hits


def test_erasure_on_demo_data_leaves_no_row_no_file_and_survives_reingestion(demo_run, spark, tmp_path, capsys):
    import hashlib
    import shutil

    from cdp_spark.cli import main
    from cdp_spark.config import load_config

    cfg, config_path, _ = demo_run
    base = Path(cfg.paths.lakehouse).parent
    for name in ("lakehouse", "data", "exports"):
        if (base / name).exists():
            shutil.copytree(base / name, tmp_path / name)
    copy = tmp_path / "cdp.yaml"
    copy.write_text(
        f"include: [{config_path}]\npaths:\n  landing: {tmp_path / 'data' / 'landing'}\n  lakehouse: {tmp_path / 'lakehouse'}\n"
        f"  exports: {tmp_path / 'exports'}\nprivacy: {{vacuum_retention_hours: 0}}\n"
    )
    cfg2 = load_config(copy)
    lake = lake_for(spark, cfg2)
    root, exports = Path(cfg2.paths.lakehouse), Path(cfg2.paths.exports)
    # A CRM customer with a non-Gmail address (Gmail's dots and +tags make raw and normalized differ)
    # who is in an export, so the export rewrite is exercised too.
    exported = {r.customer_uid for r in lake.read("gold", "export_state").select("customer_uid").distinct().collect()}
    contact = (
        lake.read("silver", "pii_contacts").where((F.col("source") == "crm_customers") & F.col("email_norm").isNotNull() & ~F.col("email_norm").contains("gmail"))
        .join(lake.read("gold", "identity_map"), ["source", "record_id"]).where(F.col("customer_uid").isin(*sorted(exported)))
        .orderBy("record_id").first()
    )
    email, uid = contact["email_norm"], contact["customer_uid"]
    records = {(r.source, r.record_id) for r in lake.read("gold", "identity_map").where(F.col("customer_uid") == uid).collect()}
    phones = {r.phone_e164 for r in lake.read("silver", "pii_contacts").join(
        lake.read("gold", "identity_map").where(F.col("customer_uid") == uid), ["source", "record_id"]).collect() if r.phone_e164}
    markers = {email.lower(), uid.lower(), *phones}
    email_hash = hashlib.sha256(email.lower().encode()).hexdigest()
    before = _tables_holding(root, records, uid, markers)
    assert len(records) > 3 and before["bronze.crm_customers"] and before["gold.customer_profile"] == 1
    assert _export_rows_holding(exports, uid, {email_hash}), "the oracle must see the customer in an export before erasure"

    capsys.readouterr()
    assert main(["forget", "--config", str(copy), "--subject", f"email:{email}", "--run-id", "erase-demo"]) == 0
    printed = capsys.readouterr().out
    assert "erasure erase-demo: 1 subject(s), 1 customer(s)" in printed, printed
    assert _tables_holding(root, records, uid, markers) == {}
    assert _files_holding(root, records, uid, markers) == []
    assert _export_rows_holding(exports, uid, {email_hash}) == []
    bronze_removed = sum(n for t, n in lake.read("ops", "erasure_log").first()["rows_removed"].items() if t.startswith("bronze.") and t != "bronze.quarantine")

    # Every landing file delivered again (new names, so bronze reads them all) ...
    landing = Path(cfg2.paths.landing)
    for f in [f for f in sorted(landing.rglob("*")) if f.is_file()]:
        shutil.copy(f, f.with_name(f"{f.stem}_again{f.suffix}"))
    # ... and a line naming the subject that cannot be parsed (it would land in quarantine, raw text and all)
    json_file = next(f for f in sorted(landing.rglob("*.jsonl")) if "_again" not in f.name)
    json_file.with_name("broken_again.jsonl").write_text(f'{{"email": "{email.upper()}", "note": \n')
    bronze = run_stage(spark, cfg2, "bronze", run_id="reingest")
    assert bronze.status == "succeeded" and bronze.rows_in > 0
    suppressed = lake.read("ops", "ingestion_log").where(F.col("run_id") == "reingest").agg(F.sum("rows_suppressed")).first()[0]
    assert suppressed >= bronze_removed + 1  # every erased bronze row, and the broken line
    assert run_stage(spark, cfg2, "silver", run_id="reingest").status == "succeeded"
    assert _tables_holding(root, records, uid, markers) == {}


def test_demo_summary_prints_segment_sizes_and_export_paths(demo_run, spark):
    from cdp_spark.demo import summary_text

    cfg, _, results = demo_run
    lines = summary_text(spark, cfg, results).splitlines()
    [sizes] = [ast.literal_eval(line.split(": ", 1)[1]) for line in lines if line.startswith("gold segment_sizes: ")]
    [paths] = [ast.literal_eval(line.split(": ", 1)[1]) for line in lines if line.startswith("gold exports: ")]
    assert sorted(sizes) == sorted(s.name for s in cfg.gold.segments) and all(isinstance(n, int) for n in sizes.values())
    assert sorted(paths) == sorted(e.name for e in cfg.gold.exports)
    for name, path in paths.items():
        assert Path(path, "manifest.json").is_file() and Path(path).parent.name == name


def test_gold_and_exports_of_the_demo_hold_no_raw_email_or_phone_and_doctor_says_so(demo_run, spark, tmp_path):
    from datetime import datetime

    from cdp_spark.activation.exports import write_export
    from cdp_spark.config import ExportConfig
    from cdp_spark.doctor import checks
    from cdp_spark.privacy import scan_for_raw_pii

    cfg, _, _ = demo_run
    assert scan_for_raw_pii(spark, cfg) == []
    assert ("PII scan of gold and exports", True, "no raw emails or phone numbers found") in checks(cfg)
    # a leaked export elsewhere: doctor fails the check and names the file
    leaky = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"exports": str(tmp_path)})})
    dest = ExportConfig(name="crm_sync", segments=("s",), fields=("email_sha256",), format="csv")
    write_export(spark.createDataFrame([("cu_1", "ana@lopez.com.tr")], "customer_uid string, email_sha256 string"), dest,
                 str(tmp_path / "crm_sync" / "r1"), run_id="r1", created_at=datetime(2026, 1, 1), counts={"rows": 1})
    [scan] = [row for row in checks(leaky) if row[0] == "PII scan of gold and exports"]
    assert scan[1] is False and "exports/crm_sync/r1/" in scan[2] and "email_sha256: 1 values look like emails" in scan[2]
