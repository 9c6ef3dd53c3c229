"""Classifier metrics computed in Spark, and the plots logged to MLflow.

Only bounded summaries reach the driver: 100 score bins for the curves, 10 for calibration and lift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

_EPS = 1e-15
CURVE_BINS = 100


@dataclass(frozen=True)
class BinaryMetrics:
    roc_auc: float
    pr_auc: float
    log_loss: float
    calibration_error: float  # expected calibration error over 10 equal-width bins
    lift_top_decile: float
    lift_top_2_deciles: float
    base_rate: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def with_probability(predictions: DataFrame, probability_col: str = "probability") -> DataFrame:
    """Adds ``p``: the positive-class probability from MLlib's probability vector."""
    return predictions.withColumn("p", vector_to_array(F.col(probability_col))[1])


def score_bins(scored: DataFrame, *, label: str = "label", p: str = "p", bins: int = CURVE_BINS) -> list[tuple[float, int, int]]:
    """(bin lower score, positives, negatives) per equal-frequency score bin, highest scores first."""
    qs = scored.approxQuantile(p, [i / bins for i in range(1, bins)], 0.001)
    edges = sorted(set(qs))
    bucket = F.lit(0)
    for i, edge in enumerate(edges, start=1):
        bucket = F.when(F.col(p) > edge, F.lit(i)).otherwise(bucket)
    rows = (
        scored.select(bucket.alias("b"), F.col(label).cast("int").alias("y"), F.col(p))
        .groupBy("b")
        .agg(F.min(p).alias("lo"), F.sum("y").alias("pos"), F.sum(1 - F.col("y")).alias("neg"))
        .orderBy(F.col("b").desc())
        .collect()
    )
    return [(float(r["lo"]), int(r["pos"]), int(r["neg"])) for r in rows]


def binary_metrics(scored: DataFrame, *, label: str = "label", p: str = "p") -> BinaryMetrics:
    """ROC-AUC and PR-AUC (exact, MLlib), log loss, ECE and lift at the top deciles, from ``label``/``p``."""
    agg = scored.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(F.col(label).cast("double")).alias("base"),
        F.avg(
            -(F.col(label) * F.log(F.greatest(F.col(p), F.lit(_EPS))) + (1 - F.col(label)) * F.log(F.greatest(1 - F.col(p), F.lit(_EPS))))
        ).alias("logloss"),
    ).first()
    n, base = int(agg["n"]), float(agg["base"] or 0.0)
    cal = (
        scored.select(F.least(F.floor(F.col(p) * 10), F.lit(9)).alias("b"), F.col(p), F.col(label).cast("double").alias("y"))
        .groupBy("b")
        .agg(F.count(F.lit(1)).alias("c"), F.avg(p).alias("conf"), F.avg("y").alias("acc"))
        .collect()
    )
    ece = sum(r["c"] / n * abs(r["conf"] - r["acc"]) for r in cal) if n else 0.0
    lift1, lift2 = _lifts(score_bins(scored, label=label, p=p), base)
    ev = BinaryClassificationEvaluator(rawPredictionCol=p, labelCol=label)
    typed = scored.select(F.col(p).cast("double").alias(p), F.col(label).cast("double").alias(label))
    roc_auc = ev.setMetricName("areaUnderROC").evaluate(typed)
    pr_auc = ev.setMetricName("areaUnderPR").evaluate(typed)
    return BinaryMetrics(roc_auc, pr_auc, float(agg["logloss"] or 0.0), float(ece), lift1, lift2, base, n)


def _lifts(bins: list[tuple[float, int, int]], base: float) -> tuple[float, float]:
    """Lift of the top 10% and top 20% by score (precision there over the base rate)."""
    total = sum(b[1] + b[2] for b in bins)
    lifts = []
    for share in (0.1, 0.2):
        tp = n = 0
        for _, pos, neg in bins:
            tp, n = tp + pos, n + pos + neg
            if n >= share * total:
                break
        lifts.append((tp / n) / base if n and base > 0 else 0.0)
    return lifts[0], lifts[1]


def write_plots(scored: DataFrame, out_dir: Path, *, title: str, importances: dict[str, float] | None = None, label: str = "label", p: str = "p") -> list[Path]:
    """ROC, PR, calibration, lift and feature-importance PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    bins = score_bins(scored, label=label, p=p)
    pos_total = sum(b[1] for b in bins) or 1
    neg_total = sum(b[2] for b in bins) or 1
    tpr, fpr, prec, depth = [0.0], [0.0], [1.0], [0.0]
    tp = fp = 0
    for _, pos, neg in bins:
        tp, fp = tp + pos, fp + neg
        tpr.append(tp / pos_total)
        fpr.append(fp / neg_total)
        prec.append(tp / max(tp + fp, 1))
        depth.append((tp + fp) / (pos_total + neg_total))
    base = pos_total / (pos_total + neg_total)
    paths = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    save(fig, "roc.png")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(tpr, prec)
    ax.set(xlabel="recall", ylabel="precision", title=f"PR: {title}")
    save(fig, "pr.png")
    cal = (
        scored.select(F.least(F.floor(F.col(p) * 10), F.lit(9)).alias("b"), F.col(p), F.col(label).cast("double").alias("y"))
        .groupBy("b").agg(F.avg(p).alias("conf"), F.avg("y").alias("acc")).orderBy("b").collect()
    )
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([r["conf"] for r in cal], [r["acc"] for r in cal], marker="o")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"Calibration: {title}")
    save(fig, "calibration.png")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(depth[1:], [pr_ / base if base else 0 for pr_ in prec[1:]])
    ax.axhline(1.0, linestyle="--", color="grey")
    ax.set(xlabel="fraction targeted (by score)", ylabel="lift", title=f"Lift: {title}")
    save(fig, "lift.png")
    if importances:
        top = sorted(importances.items(), key=lambda kv: kv[1], reverse=True)[:20]
        fig, ax = plt.subplots(figsize=(5, 0.25 * len(top) + 1))
        ax.barh([k for k, _ in reversed(top)], [v for _, v in reversed(top)])
        ax.set(title=f"Feature importance: {title}")
        save(fig, "feature_importance.png")
    return paths
