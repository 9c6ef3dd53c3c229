"""Identity resolution: the identity graph, connected components and persistent customer IDs."""

from cdp_spark.identity.components import connected_components
from cdp_spark.identity.explain import explain_records
from cdp_spark.identity.resolve import run_identity

__all__ = ["connected_components", "explain_records", "run_identity"]
