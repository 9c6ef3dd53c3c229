"""Clustering quality of an identity resolution against ground truth, computed in Spark.

Both metrics start from the contingency table of (predicted cluster, true cluster) record counts,
so the cost is a group-by, never a self-join: a cell of ``c`` records holds ``c * (c - 1) / 2``
correctly linked pairs. Only a handful of numbers reach the driver.

Records are matched on ``record_cols``; records present on one side only are ignored (the result
reports how many records were compared). A null predicted cluster counts as a singleton.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.errors import MissingColumnsError

_PRED, _TRUE, _N = "_pred_cluster", "_true_cluster", "_n"


def _pairs(count_col: str) -> Column:
    """n * (n - 1) / 2 of a count column, in exact long arithmetic."""
    return F.expr(f"`{count_col}` * (`{count_col}` - 1) div 2")


def _contingency(predicted: DataFrame, truth: DataFrame, record_cols: Sequence[str],
                 predicted_cluster: str, true_cluster: str) -> DataFrame:
    cols = list(record_cols)
    missing_pred = set(cols + [predicted_cluster]) - set(predicted.columns)
    if missing_pred:
        raise MissingColumnsError(missing_pred, "predicted clustering")
    missing_truth = set(cols + [true_cluster]) - set(truth.columns)
    if missing_truth:
        raise MissingColumnsError(missing_truth, "truth")
    singleton = F.concat_ws("\u0001", F.lit("__singleton__"), *[F.col(c).cast("string") for c in cols])
    pred = predicted.select(*cols, F.coalesce(F.col(predicted_cluster).cast("string"), singleton).alias(_PRED))
    true = truth.select(*cols, F.col(true_cluster).cast("string").alias(_TRUE))
    return pred.join(true, on=cols, how="inner").groupBy(_PRED, _TRUE).agg(F.count(F.lit(1)).alias(_N))


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def pairwise_metrics(
    predicted: DataFrame,
    truth: DataFrame,
    *,
    record_cols: Sequence[str] = ("source", "record_id"),
    predicted_cluster: str = "customer_uid",
    true_cluster: str = "person_id",
) -> dict[str, float | int]:
    """Pairwise precision, recall and F1 of a clustering of records.

    A pair of records is predicted if both are in one predicted cluster and true if both belong to
    one true cluster. Precision (recall) is 1.0 when there are no predicted (true) pairs.
    Returns precision, recall, f1, true_positive_pairs, predicted_pairs, true_pairs, records.
    """
    cells = _contingency(predicted, truth, record_cols, predicted_cluster, true_cluster)
    by_pred = cells.groupBy(_PRED).agg(F.sum(_N).alias(_N)).agg(F.sum(_pairs(_N)).alias("v"))
    by_true = cells.groupBy(_TRUE).agg(F.sum(_N).alias(_N)).agg(F.sum(_pairs(_N)).alias("v"))
    row = (
        cells.agg(F.sum(_pairs(_N)).alias("tp"), F.sum(_N).alias("records"))
        .crossJoin(by_pred.withColumnRenamed("v", "predicted_pairs"))
        .crossJoin(by_true.withColumnRenamed("v", "true_pairs"))
        .first()
    )
    tp, predicted_pairs, true_pairs = int(row["tp"] or 0), int(row["predicted_pairs"] or 0), int(row["true_pairs"] or 0)
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "true_positive_pairs": tp,
        "predicted_pairs": predicted_pairs,
        "true_pairs": true_pairs,
        "records": int(row["records"] or 0),
    }


def bcubed_metrics(
    predicted: DataFrame,
    truth: DataFrame,
    *,
    record_cols: Sequence[str] = ("source", "record_id"),
    predicted_cluster: str = "customer_uid",
    true_cluster: str = "person_id",
) -> dict[str, float | int]:
    """B-cubed precision, recall and F1 (Bagga & Baldwin), averaged over records.

    For a record in predicted cluster P and true cluster T, precision is |P ∩ T| / |P| and recall
    |P ∩ T| / |T|; over a contingency cell of c records these sum to c² / |P| and c² / |T|.
    Returns precision, recall, f1, records.
    """
    cells = _contingency(predicted, truth, record_cols, predicted_cluster, true_cluster)
    pred_size = cells.groupBy(_PRED).agg(F.sum(_N).alias("_np"))
    true_size = cells.groupBy(_TRUE).agg(F.sum(_N).alias("_nt"))
    row = (
        cells.join(pred_size, on=_PRED).join(true_size, on=_TRUE)
        .agg(
            F.sum(F.col(_N) * F.col(_N) / F.col("_np")).alias("p"),
            F.sum(F.col(_N) * F.col(_N) / F.col("_nt")).alias("r"),
            F.sum(_N).alias("records"),
        )
        .first()
    )
    records = int(row["records"] or 0)
    precision = float(row["p"]) / records if records else 1.0
    recall = float(row["r"]) / records if records else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "records": records}


def identity_quality(identity_map: DataFrame, truth_records: DataFrame) -> dict[str, float | int]:
    """An identity map against the generator's truth (``person_id``, ``linkable_group`` per record).

    Precision is judged against true persons; recall against the groups of records linkable by
    identifiers (``recall_linkable``) and against true persons (``recall_person``, which counts the
    anonymous visits no identifier links). Returns those three plus records, predicted_pairs and
    true_pairs_linkable.
    """
    by_person = pairwise_metrics(identity_map, truth_records, true_cluster="person_id")
    by_linkable = pairwise_metrics(identity_map, truth_records, true_cluster="linkable_group")
    return {
        "precision": by_person["precision"],
        "recall_linkable": by_linkable["recall"],
        "recall_person": by_person["recall"],
        "records": by_person["records"],
        "predicted_pairs": by_person["predicted_pairs"],
        "true_pairs_linkable": by_linkable["true_pairs"],
    }


def churn_auc_vs_oracle(scores: DataFrame, identity_map: DataFrame, truth_records: DataFrame, people: DataFrame) -> dict[str, float | int]:
    """ROC-AUC of the churn model next to the oracle's, on generated data whose truth is known.

    ``scores``: ``gold.customer_scores`` (its latest ``scoring_date`` is used); ``identity_map``:
    ``gold.identity_map``; ``truth_records``/``people``: the generator's ``truth/records.parquet``
    and ``truth/people.parquet``. Each person is represented by the customer holding most of its
    records (ties: smallest uid). The label is "no purchase in the window after the data end"
    (``~purchased_in_window``, one draw of the future); the model scores ``churn_probability``
    and the oracle the person's true probability ``true_p_churn``. No classifier can beat the
    oracle in expectation, so ``ratio = model_auc / oracle_auc`` says how much of the achievable
    ranking the model found. Returns persons, model_auc, oracle_auc, ratio.
    """
    from pyspark.sql import Window

    from cdp_spark.models.metrics import binary_metrics

    for df, cols, where in (
        (scores, ("customer_uid", "scoring_date", "churn_probability"), "gold.customer_scores"),
        (identity_map, ("source", "record_id", "customer_uid"), "gold.identity_map"),
        (truth_records, ("source", "record_id", "person_id"), "truth records"),
        (people, ("person_id", "true_p_churn", "purchased_in_window"), "truth people"),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise MissingColumnsError(missing, where)
    latest = scores.agg(F.max("scoring_date")).first()[0]
    held = identity_map.join(truth_records.select("source", "record_id", "person_id"), ["source", "record_id"]).groupBy(
        "customer_uid", "person_id"
    ).agg(F.count(F.lit(1)).alias("_records"))
    owner = Window.partitionBy("customer_uid").orderBy(F.col("_records").desc(), "person_id")
    main = Window.partitionBy("person_id").orderBy(F.col("_records").desc(), "customer_uid")
    represented = (
        held.withColumn("_o", F.row_number().over(owner)).where("_o = 1")
        .withColumn("_m", F.row_number().over(main)).where("_m = 1")
        .select("customer_uid", "person_id")
    )
    joined = (
        scores.where(F.col("scoring_date") == F.lit(latest)).where(F.col("churn_probability").isNotNull())
        .select("customer_uid", "churn_probability").join(represented, "customer_uid")
        .join(people.select("person_id", "true_p_churn", (~F.col("purchased_in_window")).cast("double").alias("label")), "person_id")
        .cache()
    )
    model = binary_metrics(joined.select("label", F.col("churn_probability").alias("p")))
    oracle = binary_metrics(joined.select("label", F.col("true_p_churn").alias("p")))
    joined.unpersist()
    return {"persons": model.n, "model_auc": model.roc_auc, "oracle_auc": oracle.roc_auc, "ratio": model.roc_auc / oracle.roc_auc if oracle.roc_auc else 0.0}


def id_stability(
    before: DataFrame,
    after: DataFrame,
    *,
    record_cols: Sequence[str] = ("source", "record_id"),
    cluster: str = "customer_uid",
) -> dict[str, float | int]:
    """How many customer IDs a run kept for the customers its new data did not touch.

    ``before`` and ``after`` are two identity maps (record -> ``cluster``). A record is new if only
    ``after`` has it; an ID of ``after`` is touched if a new record carries it (the new data joined
    that customer). An ID of ``before`` is compared when none of its records now has a touched ID,
    and kept when every one of its records still has it. Returns ids_compared, ids_kept, share
    (ids_kept / ids_compared, 1.0 when none is compared), records_compared, records_kept,
    records_touched, new_records and dropped_records (only in ``before``, e.g. erased or expired).
    """
    cols = list(record_cols)
    for df, name in ((before, "before"), (after, "after")):
        missing = set(cols + [cluster]) - set(df.columns)
        if missing:
            raise MissingColumnsError(missing, f"identity map {name!r}")
    old = before.select(*cols, F.col(cluster).alias("_before"))
    new = after.select(*cols, F.col(cluster).alias("_after"))
    touched = new.join(old, cols, "left_anti").select("_after").distinct()
    both = old.join(new, cols)
    touched_ids = both.join(touched, "_after").select("_before").distinct()
    compared = both.join(touched_ids, "_before", "left_anti")
    per_id = compared.groupBy("_before").agg(
        F.count(F.lit(1)).alias("_records"), F.sum((F.col("_after") == F.col("_before")).cast("long")).alias("_kept")
    )
    ids = per_id.agg(
        F.count(F.lit(1)).alias("ids_compared"),
        F.sum((F.col("_kept") == F.col("_records")).cast("long")).alias("ids_kept"),
        F.sum("_records").alias("records_compared"),
        F.sum("_kept").alias("records_kept"),
    ).first()
    counts = {
        "new_records": new.join(old, cols, "left_anti").count(),
        "dropped_records": old.join(new, cols, "left_anti").count(),
        "records_touched": both.join(touched_ids, "_before").count(),
    }
    compared_n, kept_n = int(ids["ids_compared"] or 0), int(ids["ids_kept"] or 0)
    return {
        "ids_compared": compared_n,
        "ids_kept": kept_n,
        "share": kept_n / compared_n if compared_n else 1.0,
        "records_compared": int(ids["records_compared"] or 0),
        "records_kept": int(ids["records_kept"] or 0),
        **counts,
    }
