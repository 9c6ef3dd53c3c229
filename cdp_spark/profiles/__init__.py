"""Gold profiles: survivorship, the 360° customer profile and point-in-time features."""

from cdp_spark.profiles.consent import PURPOSES, consent_state
from cdp_spark.profiles.features import build_features, customer_features
from cdp_spark.profiles.profile import ATTRIBUTES, DEFAULT_RULES, ProfileInputs, build_profile, with_rfm_scores
from cdp_spark.profiles.survivorship import survive

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_RULES",
    "PURPOSES",
    "ProfileInputs",
    "build_features",
    "build_profile",
    "consent_state",
    "customer_features",
    "survive",
    "with_rfm_scores",
]
