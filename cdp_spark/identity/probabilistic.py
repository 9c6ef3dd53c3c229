"""Probabilistic matching of person records with Splink on Spark, as identity-graph edges.

Exact identifiers cannot join a legacy record to its CRM account, nor two accounts a person opened
with different e-mail addresses. This module scores pairs of person records
(``silver.customer_records``) with a Fellegi-Sunter model and returns the pairs above
``identity.probabilistic.match_probability`` as edges with the columns of
:func:`cdp_spark.identity.graph.build_edges`, so they go through the same connected components,
size alarm and persistent IDs as the exact edges (see docs/matching.md).

* Nodes are record nodes ``record:<source>:<record_id>``; :func:`record_node_edges` links each of
  them to its record's strongest usable identifier, where ``build_edges`` centres the record's star.
* Candidate pairs come from blocking rules (config), bounded by ``max_pairs`` before any pair is made.
* The model is trained without labels: ``u`` by random sampling, ``m`` by EM on two blocking rules
  (country and date of birth, then first and last name), with term-frequency adjustments on last
  name and city.
* Comparisons: transliterated first and last name keys (Jaro-Winkler levels), date of birth with a
  day/month-swap level, postcode exact or by a per-country prefix, city.
* Over-merge defence on top of the threshold: an edge must be among the ``max_links_per_record``
  best of both its records, so one ambiguous record cannot chain many people together.
* Each edge keeps its match weight and an ``explanation`` JSON with every comparison's level,
  Bayes factor and match weight (term-frequency adjustment included).
* Models are versioned under ``model_dir`` (``v0001/``, ``v0002/``...: Splink's settings JSON and
  our metadata); a new version is trained only when asked (``retrain=True``) or when none exists.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig, ProbabilisticConfig
from cdp_spark.errors import CdpError, ConfigError, MissingColumnsError
from cdp_spark.identity.graph import EDGE_COLUMNS, IDENTIFIER_COLUMNS, _priority, node_col, record_node

log = logging.getLogger(__name__)

RULE = "probabilistic"
RECORD_COLUMNS = ("source", "record_id", "country", "first_name", "last_name", "date_of_birth", "city", "postcode", "updated_at")
PAIR_COLUMNS = (*EDGE_COLUMNS, "match_weight", "explanation")
# The matching features; blocking rules are built from these (docs/matching.md).
FEATURE_COLUMNS = (
    "country", "first_key", "last_key", "name_key", "first_initial", "last_initial", "dob", "dob_swapped", "birth_year", "postcode", "postcode_prefix", "city_key",
)
# Bump when features or comparisons change: a model trained on other features refuses to score.
FEATURES_VERSION = 1
MODEL_FILE, META_FILE = "splink_model.json", "metadata.json"
MLFLOW_EXPERIMENT = "cdp-identity-probabilistic"
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
_U_SAMPLE_PAIRS = 1e6
_SEED = 42
# m of 'dates of birth unrelated': 1 true match in 10,000 (prior, not trained).
_M_DOB_DIFFERENT = 1e-4
# Leading characters of a normalized postcode that neighbouring addresses share, per country;
# GB uses its outward code (all but the last three characters). Other countries: 3.
_POSTCODE_PREFIX = {"BR": 5, "NL": 4, "DE": 2, "FR": 2, "ES": 2, "PL": 2, "TR": 3, "IT": 3, "JP": 3, "US": 3, "CA": 3}
_DEFAULT_PREFIX = 3


@dataclass(frozen=True)
class ModelVersion:
    """A saved model: its version number, directory and metadata."""

    version: int
    path: str
    metadata: dict[str, Any]


# --------------------------------------------------------------------------- features


def normalized_postcode(col: Column) -> Column:
    """Upper case, letters and digits only; null when nothing is left."""
    text = F.regexp_replace(F.upper(col.cast("string")), "[^0-9A-Z]", "")
    return F.when(F.length(text) > 0, text)


def postcode_prefix(postcode: Column, country: Column) -> Column:
    """The part of a normalized postcode that neighbours share: a per-country number of leading
    characters, the outward code for GB (``SW1A1AA`` → ``SW1A``); null for shorter postcodes."""
    length = F.lit(_DEFAULT_PREFIX)
    for cc, n in _POSTCODE_PREFIX.items():
        length = F.when(country == cc, F.lit(n)).otherwise(length)
    length = F.when(country == "GB", F.length(postcode) - 3).otherwise(length)
    return F.when((length > 0) & (F.length(postcode) > length), postcode.substr(F.lit(1), length))


def swapped_day_month(dob: Column) -> Column:
    """The date with day and month exchanged, where that is another valid date (day ≤ 12, day ≠ month)."""
    day, month = F.dayofmonth(dob), F.month(dob)
    return F.when((day <= 12) & (day != month), F.make_date(F.year(dob), day, month))


def _features(records: DataFrame) -> DataFrame:
    """Person records → the matching features Splink compares (one row per record)."""
    from cdp_spark.standardize import name_key

    first, last = name_key(F.col("first_name")), name_key(F.col("last_name"))
    dob = F.col("date_of_birth").cast("date")
    country = F.upper(F.trim(F.col("country")))
    postcode = normalized_postcode(F.col("postcode"))
    keyed = records.select(
        record_node().alias("unique_id"),
        "source",
        "record_id",
        F.col("updated_at").cast("timestamp").alias("updated_at"),
        F.when(F.length(country) > 0, country).alias("country"),
        first.alias("first_key"),
        last.alias("last_key"),
        F.date_format(dob, "yyyy-MM-dd").alias("dob"),
        F.date_format(swapped_day_month(dob), "yyyy-MM-dd").alias("dob_swapped"),
        F.year(dob).cast("string").alias("birth_year"),
        postcode.alias("postcode"),
        name_key(F.col("city")).alias("city_key"),
    )
    full_name = F.concat_ws(" ", "first_key", "last_key")
    return keyed.select(
        "unique_id", "source", "record_id", "updated_at", "country", "first_key", "last_key",
        F.when(F.col("first_key").isNotNull() & F.col("last_key").isNotNull(), full_name).alias("name_key"),
        F.substring("first_key", 1, 1).alias("first_initial"),
        F.substring("last_key", 1, 1).alias("last_initial"),
        "dob", "dob_swapped", "birth_year", "postcode",
        postcode_prefix(F.col("postcode"), F.col("country")).alias("postcode_prefix"),
        "city_key",
    )


# --------------------------------------------------------------------------- the Splink model


def _settings(cfg: ProbabilisticConfig) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator

    dob = cl.CustomComparison(
        output_column_name="dob",
        comparison_description="date of birth",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            cll.CustomLevel("dob_swapped_l = dob_r", label_for_charts="day and month swapped"),
            cll.LevenshteinLevel("dob", 1).configure(label_for_charts="one character differs"),
            cll.CustomLevel("birth_year_l = birth_year_r", label_for_charts="same birth year"),
            # Fixed, not learned: EM takes namesakes of one household (a parent and a child, same
            # name and address) for matches with unrelated birth dates; see docs/matching.md.
            cll.ElseLevel().configure(m_probability=_M_DOB_DIFFERENT, fix_m_probability=True),
        ],
    )
    # Postcode and city in one comparison: they are correlated (same postcode, same city), and
    # counting them as two independent agreements would over-weight a shared household address.
    jw_city = "jaro_winkler(city_key_l, city_key_r) >= 0.9"
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_description="postcode and city",
        comparison_levels=[
            cll.CustomLevel("(postcode_l IS NULL OR postcode_r IS NULL) AND (city_key_l IS NULL OR city_key_r IS NULL)").configure(
                is_null_level=True, label_for_charts="postcode and city missing"
            ),
            cll.CustomLevel(f"postcode_l = postcode_r AND {jw_city}", label_for_charts="same postcode and city"),
            cll.CustomLevel("postcode_l = postcode_r", label_for_charts="same postcode"),
            cll.CustomLevel(f"postcode_prefix_l = postcode_prefix_r AND {jw_city}", label_for_charts="same postcode area and city"),
            cll.CustomLevel("city_key_l = city_key_r", label_for_charts="same city").configure(tf_adjustment_column="city_key"),
            cll.CustomLevel(jw_city, label_for_charts="similar city"),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.JaroWinklerAtThresholds("first_key", [0.92, 0.8]),
            cl.JaroWinklerAtThresholds("last_key", [0.92, 0.8]).configure(term_frequency_adjustments=True),
            dob,
            address,
        ],
        blocking_rules_to_generate_predictions=_blocking_rules(cfg),
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["source", "updated_at"],
    )


def _blocking_rules(cfg: ProbabilisticConfig) -> list[Any]:
    from splink import block_on

    return [block_on(*rule) for rule in cfg.blocking_rules]


def _linker(spark: SparkSession, features: DataFrame, settings: Any) -> Any:
    """A Splink linker over ``features``, with Splink's JVM similarity functions (``jaro_winkler``...).

    The functions' jar ships in Splink's wheel; a session built without it in ``spark.jars`` gets it
    with ``ADD JAR`` (which also ships it to executors) before Splink registers the functions.
    """
    from splink import Linker, SparkAPI
    from splink.backends.spark import similarity_jar_location

    registered = spark.catalog.functionExists("jaro_winkler")
    if not registered:
        jar = similarity_jar_location()
        spark.sql(f"ADD JAR '{jar}'")
        log.info("added Splink's similarity functions from %s", jar)
    db_api = SparkAPI(spark_session=spark, register_udfs_automatically=not registered)
    if not spark.catalog.functionExists("jaro_winkler"):
        raise CdpError(
            "Splink's similarity functions could not be registered in this Spark session; add "
            "splink.backends.spark.similarity_jar_location() to spark.jars (SparkConfig.jars) and restart it"
        )
    return Linker(db_api.register(features), settings)


def _train(linker: Any) -> list[list[str]]:
    """Unsupervised training; returns the EM blocking rules for the metadata."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match([block_on("country", "name_key", "dob")], recall=0.7)
    # One sample for every comparison (no probe and chunks: each is a round of Spark jobs).
    linker.training.estimate_u_using_random_sampling(max_pairs=_U_SAMPLE_PAIRS, seed=_SEED, num_chunks=1, min_count_per_level=None)
    em_rules = [["country", "dob"], ["first_key", "last_key"]]
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    return em_rules


# --------------------------------------------------------------------------- model storage


def model_dir_for(cfg: CdpConfig) -> str:
    """Where the model versions live: ``identity.probabilistic.model_dir``, relative to the lakehouse."""
    configured = cfg.identity.probabilistic.model_dir or "models/identity_probabilistic"
    path = Path(os.path.expanduser(configured))
    return str(path if path.is_absolute() else Path(cfg.paths.lakehouse) / path)


def model_versions(model_dir: str) -> list[ModelVersion]:
    """Saved model versions under ``model_dir``, oldest first (a directory without metadata is ignored)."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _VERSION_DIR.match(child.name)
        if match and (child / META_FILE).is_file() and (child / MODEL_FILE).is_file():
            found.append(ModelVersion(int(match.group(1)), str(child), json.loads((child / META_FILE).read_text(encoding="utf-8"))))
    return sorted(found, key=lambda m: m.version)


def _save(linker: Any, model_dir: str, metadata: dict[str, Any]) -> ModelVersion:
    """Write the next version atomically: a temp directory renamed into place."""
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    existing = model_versions(model_dir)
    version = existing[-1].version + 1 if existing else 1
    final = root / f"v{version:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        linker.misc.save_model_to_json(str(tmp / MODEL_FILE), overwrite=True)
        meta = {**metadata, "version": version}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.rename(tmp, final)  # fails if another trainer took this version number first
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CdpError(f"could not save the probabilistic model as {final}: {err}; check the directory and retry") from err
    return ModelVersion(version, str(final), meta)


def _load_settings(model: ModelVersion, cfg: ProbabilisticConfig) -> dict[str, Any]:
    if model.metadata.get("features_version") != FEATURES_VERSION:
        raise ConfigError(
            f"identity.probabilistic: the model in {model.path} was trained on features version "
            f"{model.metadata.get('features_version')}, this code builds version {FEATURES_VERSION}; "
            "retrain it (identity.probabilistic.retrain: true, or retrain=True)"
        )
    settings = json.loads((Path(model.path) / MODEL_FILE).read_text(encoding="utf-8"))
    # Blocking only chooses which pairs are scored: the configured rules apply to a saved model too.
    settings["blocking_rules_to_generate_predictions"] = [r.get_blocking_rule("spark").as_dict() for r in _blocking_rules(cfg)]
    return settings


def _log_to_mlflow(mlflow_config: CdpConfig, model: ModelVersion, cfg: ProbabilisticConfig) -> None:
    import mlflow

    from cdp_spark.models.train import setup_mlflow

    experiment_id = setup_mlflow(mlflow_config, MLFLOW_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"splink-v{model.version:04d}"):
        mlflow.log_params({"model_version": model.version, "match_probability": cfg.match_probability, "features_version": FEATURES_VERSION})
        mlflow.log_metric("training_records", model.metadata["training_records"])
        mlflow.log_artifacts(model.path, artifact_path="splink_model")
    log.info("logged probabilistic model v%04d to MLflow experiment %s", model.version, MLFLOW_EXPERIMENT)


# --------------------------------------------------------------------------- candidate-pair bound


def candidate_pairs(features: DataFrame, rules: tuple[tuple[str, ...], ...]) -> list[int]:
    """Pairs each blocking rule generates (records agreeing on every column, none null): an upper
    bound of what Splink scores (it drops pairs an earlier rule found). A group-by per rule, one job."""
    per_rule = None
    for i, rule in enumerate(rules):
        try:
            keys = [F.expr(part) for part in rule]
            blocks = features
            for key in keys:
                blocks = blocks.where(key.isNotNull())
            sizes = blocks.groupBy(*keys).agg(F.count(F.lit(1)).alias("n"))
        except AnalysisException as err:  # an unknown column or a bad expression
            raise ConfigError(
                f"identity.probabilistic.blocking_rules[{i}] = {list(rule)} is not valid over the matching features "
                f"({', '.join(FEATURE_COLUMNS)}): {str(err).splitlines()[0]}"
            ) from None
        pairs = sizes.select(F.lit(i).alias("rule"), F.expr("n * (n - 1) div 2").alias("pairs"))
        per_rule = pairs if per_rule is None else per_rule.unionByName(pairs)
    if per_rule is None:
        return []
    counts = {r["rule"]: int(r["pairs"]) for r in per_rule.groupBy("rule").agg(F.sum("pairs").alias("pairs")).collect()}
    return [counts.get(i, 0) for i in range(len(rules))]


def _check_bound(features: DataFrame, cfg: ProbabilisticConfig) -> int:
    counts = candidate_pairs(features, cfg.blocking_rules)
    total = sum(counts)
    log.info("probabilistic: candidate pairs per blocking rule %s (total at most %d)", counts, total)
    if total > cfg.max_pairs:
        worst = max(range(len(counts)), key=counts.__getitem__)
        raise ConfigError(
            f"identity.probabilistic.blocking_rules would score up to {total:,} pairs, above max_pairs={cfg.max_pairs:,}; "
            f"rule {list(cfg.blocking_rules[worst])} alone makes {counts[worst]:,}: add a column to it or raise max_pairs"
        )
    return total


# --------------------------------------------------------------------------- scored pairs → edges


def _level_label(comparison: dict[str, Any]) -> Column:
    """Label of the comparison level a pair fell into, from its gamma value."""
    name = comparison["output_column_name"]
    levels = comparison["comparison_levels"]
    label = F.lit(None).cast("string")
    value = len([lv for lv in levels if not lv.get("is_null_level")]) - 1
    for level in levels:
        gamma = -1 if level.get("is_null_level") else value
        if not level.get("is_null_level"):
            value -= 1
        label = F.when(F.col(f"gamma_{name}") == gamma, F.lit(level.get("label_for_charts", level["sql_condition"]))).otherwise(label)
    return label


def _explanation(comparisons: list[dict[str, Any]], columns: list[str]) -> Column:
    """JSON list of each comparison's level, match weight and Bayes factor (term-frequency
    adjustment included: Splink's ``mw_<name> + mw_tf_adj_<name>``)."""
    parts = []
    for comparison in comparisons:
        name = comparison["output_column_name"]
        weight = F.col(f"mw_{name}")
        if f"mw_tf_adj_{name}" in columns:
            weight = weight + F.coalesce(F.col(f"mw_tf_adj_{name}"), F.lit(0.0))
        parts.append(
            F.struct(
                F.lit(name).alias("comparison"),
                _level_label(comparison).alias("level"),
                F.round(weight, 4).alias("match_weight"),
                F.round(F.pow(F.lit(2.0), weight), 6).alias("bayes_factor"),
            )
        )
    return F.to_json(F.array(*parts))


def _best_per_record(pairs: DataFrame, k: int) -> DataFrame:
    """Keep a pair only when it is among the ``k`` most probable pairs of both its records."""
    ends = pairs.select(F.col("src").alias("node"), "src", "dst", "confidence").unionByName(
        pairs.select(F.col("dst").alias("node"), "src", "dst", "confidence")
    )
    w = Window.partitionBy("node").orderBy(F.col("confidence").desc(), F.col("src"), F.col("dst"))
    worst = ends.withColumn("rank", F.row_number().over(w)).groupBy("src", "dst").agg(F.max("rank").alias("rank"))
    return pairs.join(worst.where(F.col("rank") <= k), ["src", "dst"], "left_semi")


def _edges(predictions: DataFrame, comparisons: list[dict[str, Any]], cfg: ProbabilisticConfig) -> DataFrame:
    sources = F.array_sort(F.array_distinct(F.array("source_l", "source_r")))
    seen = F.greatest("updated_at_l", "updated_at_r")
    pairs = predictions.select(
        F.least("unique_id_l", "unique_id_r").alias("src"),
        F.greatest("unique_id_l", "unique_id_r").alias("dst"),
        F.lit(RULE).alias("rule"),
        F.col("match_probability").cast("double").alias("confidence"),
        F.array_join(sources, "+").alias("source"),
        seen.alias("first_seen"),
        seen.alias("last_seen"),
        F.lit(2).cast("long").alias("records"),
        F.col("match_weight").cast("double").alias("match_weight"),
        _explanation(comparisons, predictions.columns).alias("explanation"),
    ).where(F.col("confidence") >= cfg.match_probability)
    return _best_per_record(pairs, cfg.max_links_per_record).select(*PAIR_COLUMNS)


def probabilistic_edges(
    spark: SparkSession,
    records: DataFrame,
    *,
    cfg: ProbabilisticConfig,
    model_dir: str,
    retrain: bool = False,
    mlflow_config: CdpConfig | None = None,
) -> DataFrame:
    """Identity-graph edges between person records that the saved Splink model matches.

    ``records``: ``silver.customer_records`` (at least ``RECORD_COLUMNS``). Scores the candidate
    pairs of ``cfg.blocking_rules`` with the latest model version under ``model_dir``; with
    ``retrain=True``, or when no version exists yet, first trains a new version on ``records``
    (unsupervised) and saves it, and logs it to the MLflow server of ``mlflow_config`` (its
    ``paths.mlflow_tracking_uri`` and ``paths.mlflow_artifacts``) when that is given.

    Returns ``src, dst, rule, confidence, source, first_seen, last_seen, records`` (as
    :func:`~cdp_spark.identity.graph.build_edges`; ``src``/``dst`` are record nodes, ``rule`` is
    ``"probabilistic"``, ``confidence`` the match probability, ``source`` the records' sources
    joined by ``+``) plus ``match_weight`` and ``explanation`` (JSON list of
    ``{comparison, level, bayes_factor, match_weight}``). Only pairs at or above
    ``cfg.match_probability`` that are among the ``cfg.max_links_per_record`` best pairs of both
    their records are returned. Raises :class:`ConfigError` when the blocking rules would make
    more than ``cfg.max_pairs`` candidate pairs. Link the record nodes to the graph with
    :func:`record_node_edges`.
    """
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise MissingColumnsError(missing, "person records (silver.customer_records)")
    # Names go through a pandas UDF: materialize once, Splink reads the features many times.
    features = _features(records).localCheckpoint()
    _check_bound(features, cfg)

    versions = model_versions(model_dir)
    if retrain or not versions:
        if not versions:
            log.warning("probabilistic: no saved model under %s; training the first version", model_dir)
        linker = _linker(spark, features, _settings(cfg))
        started = datetime.now(timezone.utc)
        em_rules = _train(linker)
        model = _save(
            linker,
            model_dir,
            {
                "trained_at": started.isoformat(timespec="seconds"),
                "training_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
                "training_records": features.count(),
                "features_version": FEATURES_VERSION,
                "splink_version": _splink_version(),
                "em_blocking_rules": em_rules,
            },
        )
        log.info("probabilistic: trained model v%04d in %s", model.version, model.path)
        if mlflow_config is not None:
            _log_to_mlflow(mlflow_config, model, cfg)
    else:
        model = versions[-1]
        log.info("probabilistic: scoring with model v%04d (%s)", model.version, model.path)
        linker = _linker(spark, features, _load_settings(model, cfg))
    comparisons = linker.misc.save_model_to_json()["comparisons"]
    predictions = linker.inference.predict(threshold_match_probability=cfg.match_probability, warning_mode="never").as_spark_dataframe()
    return _edges(predictions, comparisons, cfg)


def _splink_version() -> str:
    import splink

    return splink.__version__


def record_node_edges(pairs: DataFrame, identifiers: DataFrame, blocked: DataFrame) -> DataFrame:
    """Edges joining each record node of ``pairs`` to its record's strongest usable identifier.

    ``identifiers``/``blocked`` are those given to ``build_edges``: the identifier chosen is the
    one ``build_edges`` centres the record's star on, so the record node joins the record's
    component. A record whose identifiers are all blocklisted already is its record node in the
    graph and needs no edge. Returns ``EDGE_COLUMNS`` with ``rule = "record"``.
    """
    missing = [c for c in IDENTIFIER_COLUMNS if c not in identifiers.columns]
    if missing:
        raise MissingColumnsError(missing, "silver.identifiers")
    nodes = pairs.select(F.col("src").alias("rnode")).unionByName(pairs.select(F.col("dst").alias("rnode"))).distinct()
    ids = (
        identifiers.select("source", "record_id", "id_type", "seen_at", node_col().alias("node"), _priority(F.col("id_type")).alias("prio"))
        .join(blocked.select("node"), "node", "left_anti")
        .withColumn("rnode", record_node())
        .join(nodes, "rnode", "left_semi")
    )
    hubs = ids.groupBy("source", "rnode").agg(
        F.min(F.struct("prio", "node")).alias("hub"), F.min("seen_at").alias("first_seen"), F.max("seen_at").alias("last_seen")
    )
    return hubs.select(
        F.least("rnode", "hub.node").alias("src"),
        F.greatest("rnode", "hub.node").alias("dst"),
        F.lit("record").alias("rule"),
        F.lit(1.0).alias("confidence"),
        "source",
        "first_seen",
        "last_seen",
        F.lit(1).cast("long").alias("records"),
    )
