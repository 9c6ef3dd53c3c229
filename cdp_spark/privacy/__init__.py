"""Privacy and compliance (GDPR/KVKK): erasure, suppression, retention, PII scan, residency.

Keyed pseudonyms live in :mod:`cdp_spark.privacy.pseudonymize`; consent state per customer is
:func:`cdp_spark.profiles.consent_state`. See docs/privacy.md.
"""

from cdp_spark.privacy.erasure import ErasureReport, forget
from cdp_spark.privacy.residency import residency_split
from cdp_spark.privacy.retention import purge_expired
from cdp_spark.privacy.scan import scan_for_raw_pii
from cdp_spark.privacy.subjects import ErasureRequestError, read_requests
from cdp_spark.privacy.suppression import apply_suppression

__all__ = [
    "ErasureReport",
    "ErasureRequestError",
    "apply_suppression",
    "forget",
    "purge_expired",
    "read_requests",
    "residency_split",
    "scan_for_raw_pii",
]
