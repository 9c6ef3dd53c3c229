"""Labelled synthetic CDP data: multi-country, multi-channel landing files with ground truth.

``generate(out, customers=...)`` writes every landing source under ``out/landing/<source>/`` and
the truth (record -> person, linkable groups, true churn/purchase probabilities) under
``out/truth/``. The layout is documented in ``docs/data.md``.
"""

from cdp_spark.synthetic._countries import DEFAULT_COUNTRIES, supported_countries
from cdp_spark.synthetic.generator import SOURCES, GenerationReport, generate

__all__ = ["DEFAULT_COUNTRIES", "SOURCES", "GenerationReport", "generate", "supported_countries"]
