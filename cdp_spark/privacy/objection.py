"""Right to object to profiling (GDPR Art. 21, KVKK Art. 11): customers whose current ``profiling``
consent is revoked get no model scores, and the scores kept from before their objection are deleted."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from cdp_spark.config import CdpConfig
from cdp_spark.lake import Lake
from cdp_spark.privacy._delete import Predicates, delete_where, key_set
from cdp_spark.profiles.consent import consent_column

log = logging.getLogger(__name__)

PROFILING = "profiling"
SCORES = ("gold", "customer_scores")


def objecting_customers(lake: Lake, cfg: CdpConfig) -> DataFrame | None:
    """``customer_uid`` of customers objecting to profiling (``consent_profiling`` is ``False`` in
    ``gold.customer_profile``); None when ``privacy.objecting_purposes_block_scores`` is off or there is
    no profile to read consent from. No consent record is not an objection."""
    if not cfg.privacy.objecting_purposes_block_scores or not lake.exists("gold", "customer_profile"):
        return None
    profile = lake.read("gold", "customer_profile")
    column = consent_column(PROFILING)
    if column not in profile.columns:
        log.warning("gold.customer_profile has no %s column: profiling objections cannot be honoured; run gold first", column)
        return None
    return profile.where(profile[column] == False).select("customer_uid")  # noqa: E712 (a null consent is no objection)


def withdraw_scores(spark: SparkSession, lake: Lake, objecting: DataFrame, cfg: CdpConfig) -> int:
    """Delete every ``gold.customer_scores`` row (all scoring dates) of the ``objecting`` customers; rows deleted."""
    if not lake.exists(*SCORES):
        return 0
    uids = key_set(objecting.select("customer_uid"), bound=cfg.privacy.erasure_in_list_max)
    preds = Predicates(spark)
    with preds.scope():
        removed = delete_where(lake, *SCORES, preds.isin(["customer_uid"], uids))
    if removed:
        log.info("profiling objections: %d earlier score row(s) of %d objecting customer(s) deleted", removed, uids.size)
    return removed
