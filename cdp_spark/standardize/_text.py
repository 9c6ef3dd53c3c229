"""Text helpers shared by the standardizers (private)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

# Unicode whitespace (\s is ASCII-only in Java regex without the U flag) at either end.
_EDGE_SPACE = r"^[\s\p{Z}]+|[\s\p{Z}]+$"


def nfkc(col: Column) -> Column:
    """Unicode NFKC inside the JVM: ICU4J ships with Spark 4 (collations) and its static
    ``Normalizer.compose(String, boolean compat)`` is reachable through ``reflect``, so no Python
    worker is needed. ``reflect`` throws on null input, hence the guard."""
    return F.when(col.isNotNull(), F.reflect(F.lit("com.ibm.icu.text.Normalizer"), F.lit("compose"), col, F.lit(True)))


def strip_edges(col: Column) -> Column:
    """Trim every Unicode space (NBSP, ideographic space, tabs...), not only ASCII blanks."""
    return F.regexp_replace(col, _EDGE_SPACE, "")


def py_nfkc_clean(value: str) -> str:
    """Python twin of ``strip_edges(nfkc(...))`` plus inner-space collapsing, for pandas UDFs and driver lookups."""
    return " ".join(unicodedata.normalize("NFKC", value).split())


def let(value: Column, body: Callable[[Column], Column]) -> Column:
    """Evaluate ``value`` once and pass it to ``body`` as a lambda variable.

    Spark inlines a Column every time it is referenced, so a normalization used in ten CASE
    branches runs ten times per row; binding it through ``transform`` over a one-element array
    computes it once (Spark has no ``let``)."""
    return F.transform(F.array(value), body).getItem(0)
