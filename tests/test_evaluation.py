"""Clustering metrics against plain-Python oracles that enumerate record pairs."""

from __future__ import annotations

import itertools
import random

import pytest

from cdp_spark.errors import MissingColumnsError
from cdp_spark.evaluation import bcubed_metrics, id_stability, identity_quality, pairwise_metrics


def _oracle_pairwise(pred: dict[str, str], true: dict[str, int]) -> dict[str, float]:
    records = sorted(set(pred) & set(true))
    pairs = list(itertools.combinations(records, 2))
    predicted = {p for p in pairs if pred[p[0]] == pred[p[1]]}
    actual = {p for p in pairs if true[p[0]] == true[p[1]]}
    tp = len(predicted & actual)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(actual) if actual else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "true_positive_pairs": tp,
            "predicted_pairs": len(predicted), "true_pairs": len(actual), "records": len(records)}


def _oracle_bcubed(pred: dict[str, str], true: dict[str, int]) -> dict[str, float]:
    records = sorted(set(pred) & set(true))
    p_sum = r_sum = 0.0
    for r in records:
        same_pred = [x for x in records if pred[x] == pred[r]]
        same_true = [x for x in records if true[x] == true[r]]
        both = [x for x in same_pred if true[x] == true[r]]
        p_sum += len(both) / len(same_pred)
        r_sum += len(both) / len(same_true)
    precision, recall = p_sum / len(records), r_sum / len(records)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall), "records": len(records)}


def _frames(spark, pred: dict[str, str], true: dict[str, int]):
    predicted = spark.createDataFrame([("crm", r, c) for r, c in pred.items()], "source string, record_id string, customer_uid string")
    truth = spark.createDataFrame([("crm", r, p) for r, p in true.items()], "source string, record_id string, person_id long")
    return predicted, truth


def test_pairwise_metrics_on_a_hand_checked_clustering(spark):
    # truth: {a,b,c} {d,e} {f}; prediction: {a,b} {c,d,e} {f}
    true = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    pred = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "f": "z"}
    got = pairwise_metrics(*_frames(spark, pred, true))
    # predicted pairs ab, cd, ce, de (4); true pairs ab, ac, bc, de (4); correct ab, de (2)
    assert got == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "true_positive_pairs": 2,
                   "predicted_pairs": 4, "true_pairs": 4, "records": 6}


def test_bcubed_metrics_on_a_hand_checked_clustering(spark):
    true = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    pred = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "f": "z"}
    got = bcubed_metrics(*_frames(spark, pred, true))
    # precision per record: a,b 1; c 1/3; d,e 2/3; f 1 -> 14/3 / 6; recall: a,b 2/3; c 1/3; d,e,f 1 -> 14/3 / 6
    assert got["precision"] == pytest.approx(14 / 18)
    assert got["recall"] == pytest.approx(14 / 18)
    assert got["f1"] == pytest.approx(14 / 18)
    assert got["records"] == 6


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_metrics_match_pair_enumeration_on_random_clusterings(spark, seed):
    rnd = random.Random(seed)
    records = [f"r{i}" for i in range(40)]
    true = {r: rnd.randrange(8) for r in records}
    pred = {r: f"c{rnd.randrange(10)}" for r in records if rnd.random() < 0.9}  # some records unpredicted
    predicted, truth = _frames(spark, pred, true)
    assert pairwise_metrics(predicted, truth) == pytest.approx(_oracle_pairwise(pred, true))
    assert bcubed_metrics(predicted, truth) == pytest.approx(_oracle_bcubed(pred, true))


def test_all_singletons_have_perfect_precision_and_zero_recall(spark):
    true = {"a": 1, "b": 1, "c": 2}
    pred = {"a": "x", "b": "y", "c": "z"}
    got = pairwise_metrics(*_frames(spark, pred, true))
    assert (got["precision"], got["recall"], got["f1"], got["predicted_pairs"]) == (1.0, 0.0, 0.0, 0)


def test_null_predicted_cluster_counts_as_singleton(spark):
    true = {"a": 1, "b": 1, "c": 1}
    predicted = spark.createDataFrame([("crm", "a", None), ("crm", "b", None), ("crm", "c", "x")],
                                      "source string, record_id string, customer_uid string")
    truth = spark.createDataFrame([("crm", r, p) for r, p in true.items()], "source string, record_id string, person_id long")
    got = pairwise_metrics(predicted, truth)
    assert (got["predicted_pairs"], got["true_pairs"], got["true_positive_pairs"]) == (0, 3, 0)


def test_same_record_id_in_two_sources_is_two_records(spark):
    predicted = spark.createDataFrame([("crm", "1", "x"), ("orders", "1", "x")], "source string, record_id string, customer_uid string")
    truth = spark.createDataFrame([("crm", "1", 1), ("orders", "1", 2)], "source string, record_id string, person_id long")
    got = pairwise_metrics(predicted, truth)
    assert (got["precision"], got["recall"], got["records"]) == (0.0, 1.0, 2)


def test_missing_cluster_column_is_a_typed_error(spark):
    predicted, truth = _frames(spark, {"a": "x"}, {"a": 1})
    with pytest.raises(MissingColumnsError, match="cluster_id"):
        pairwise_metrics(predicted, truth, predicted_cluster="cluster_id")


def _map(spark, rows: dict[str, str]):
    return spark.createDataFrame([("crm", r, c) for r, c in rows.items()], "source string, record_id string, customer_uid string")


def test_id_stability_counts_kept_changed_touched_new_and_dropped_ids(spark):
    before = _map(spark, {"r1": "A", "r2": "A", "r3": "B", "r4": "C", "r5": "D", "r6": "E", "r7": "F", "r8": "F"})
    # B changed without new data (an unstable ID); C was joined by the new record n1 (touched);
    # E's record is gone (erased); F was split without new data (r8 got a new ID)
    after = _map(spark, {"r1": "A", "r2": "A", "r3": "B2", "r4": "C", "n1": "C", "r5": "D", "r7": "F", "r8": "G"})
    assert id_stability(before, after) == {
        "ids_compared": 4, "ids_kept": 2, "share": 0.5, "records_compared": 6, "records_kept": 4,
        "new_records": 1, "dropped_records": 1, "records_touched": 1,
    }


def test_id_stability_of_identical_maps_is_one_and_of_empty_maps_is_one(spark):
    same = _map(spark, {"r1": "A", "r2": "B"})
    assert id_stability(same, same)["share"] == 1.0
    empty = _map(spark, {}).limit(0)
    assert id_stability(empty, empty) == {
        "ids_compared": 0, "ids_kept": 0, "share": 1.0, "records_compared": 0, "records_kept": 0,
        "new_records": 0, "dropped_records": 0, "records_touched": 0,
    }


def test_id_stability_names_a_missing_column(spark):
    with pytest.raises(MissingColumnsError, match="customer_uid"):
        id_stability(_map(spark, {"r1": "A"}).drop("customer_uid"), _map(spark, {"r1": "A"}))


def test_identity_quality_judges_precision_by_person_and_recall_by_linkable_group(spark):
    # persons {a,b,c} {d}; identifiers can link only a-b (c is an anonymous visit of person 1)
    truth = spark.createDataFrame(
        [("crm", "a", 1, 10), ("crm", "b", 1, 10), ("crm", "c", 1, 11), ("crm", "d", 2, 12)],
        "source string, record_id string, person_id long, linkable_group long",
    )
    predicted = _map(spark, {"a": "x", "b": "x", "c": "y", "d": "x"})  # d wrongly joined to a, b
    # predicted pairs ab, ad, bd; true by person ab, ac, bc; linkable ab
    assert identity_quality(predicted, truth) == {
        "precision": 1 / 3, "recall_linkable": 1.0, "recall_person": 1 / 3, "records": 4, "predicted_pairs": 3, "true_pairs_linkable": 1,
    }
