"""Person names: a cleaned display form and an ASCII matching key."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

from cdp_spark.standardize._text import py_nfkc_clean

# Lower-cased inside a name ("Jan van der Berg"), capitalized when they start it.
_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "do", "dos", "das", "du", "la", "le", "ter", "ten", "zu"})
_SEGMENT = re.compile(r"([-'’])")


def _lower(text: str, turkish: bool) -> str:
    # Turkish: I ↔ ı and İ ↔ i. Elsewhere İ is read as I (Python's lower("İ") adds U+0307).
    return text.translate({ord("I"): "ı", ord("İ"): "i"} if turkish else {ord("İ"): "I"}).lower()


def _upper_first(text: str, turkish: bool) -> str:
    if not text:
        return text
    first = text[0]
    if turkish and first in "iı":
        upper = "İ" if first == "i" else "I"
    else:
        upper = first.upper()
        upper = upper if len(upper) == 1 else first  # no "SSchmidt" from a leading ß
    return upper + text[1:]


def _case_word(word: str, turkish: bool, first: bool) -> str:
    has_lower = any(ch.islower() and ch != "ß" for ch in word)
    has_upper = any(ch.isupper() for ch in word)
    if has_lower and has_upper:
        return word  # typed with intent: McDonald, DiCaprio, İlker
    lowered = _lower(word, turkish)
    if not first and lowered in _PARTICLES:
        return lowered
    return "".join(_upper_first(part, turkish) for part in _SEGMENT.split(lowered))


def _clean_one(raw: str | None, country: str | None) -> str | None:
    if raw is None:
        return None
    text = py_nfkc_clean(raw)
    if not text:
        return None
    turkish = isinstance(country, str) and country.strip().upper() == "TR"
    return " ".join(_case_word(word, turkish, i == 0) for i, word in enumerate(text.split(" ")))


def _key_one(raw: str | None) -> str | None:
    from anyascii import anyascii

    if raw is None:
        return None
    text = anyascii(unicodedata.normalize("NFKC", raw)).lower()
    text = re.sub(r"['`]", "", text)
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return text or None


def _cached_map(fn: Callable[..., str | None], *columns: pd.Series) -> pd.Series:
    """Apply ``fn`` row-wise, computing each distinct input once per Arrow batch."""
    cache: dict[tuple, str | None] = {}
    out = []
    for key in zip(*(c.where(c.notna(), None) for c in columns)):
        if key not in cache:
            cache[key] = fn(*key)
        out.append(cache[key])
    return pd.Series(out, dtype=object)


# NFKC, case rules with Python's Unicode tables and anyascii are not Spark built-ins: pandas UDFs.
@pandas_udf(StringType())  # type: ignore[call-overload]
def _clean_udf(raw: pd.Series, country: pd.Series) -> pd.Series:
    return _cached_map(_clean_one, raw, country)


@pandas_udf(StringType())  # type: ignore[call-overload]
def _key_udf(raw: pd.Series) -> pd.Series:
    return _cached_map(_key_one, raw)


def name_clean(col: Column, country_col: Column | None = None) -> Column:
    """Display form of a name: NFKC, trimmed, single spaces, title case; null when blank.

    Only words typed all upper or all lower case are recased, so ``McDonald`` and ``DiCaprio``
    survive; parts after ``-`` and ``'`` are capitalized (``Jean-Pierre O'Brien``); particles
    inside a name stay lower case (``Jan van der Berg``). When ``country_col`` is ``TR`` Turkish
    casing applies: ``i`` ↔ ``İ`` and ``ı`` ↔ ``I`` (``ilker ışık`` → ``İlker Işık``, ``KIRIŞ`` →
    ``Kırış``); elsewhere ``İ`` is read as ``I``. German ``ß`` is kept (``straße`` → ``Straße``).
    Half-width katakana become full-width (``ﾔﾏﾀﾞ`` → ``ヤマダ``).
    """
    country = country_col.cast("string") if country_col is not None else F.lit(None).cast("string")
    return _clean_udf(col.cast("string"), country)


def name_key(col: Column) -> Column:
    """ASCII matching key: anyascii transliteration, lower case, apostrophes dropped, other
    punctuation and spaces collapsed to one space; null when nothing is left.

    ``Şükrü Çağlayan`` → ``sukru caglayan``, ``İlker Işık``/``ILKER ISIK`` → ``ilker isik``,
    ``Straße`` → ``strasse``, ``O'Brien`` → ``obrien``, hiragana, katakana and half-width kana all
    give one romaji key (``やまだ``/``ヤマダ``/``ﾔﾏﾀﾞ`` → ``yamada``). Known limits: ``Müller`` gives
    ``muller`` and ``Mueller`` gives ``mueller``, which do not match exactly (expanding ü to ue
    would turn Turkish ``Şükrü`` into ``suekrue``; leave this pair to the fuzzy comparison in
    matching). Kanji are romanised with anyascii's Mandarin readings (``山田太郎`` →
    ``shantiantailang``): stable for kanji-to-kanji matching but not equal to the kana key, which
    needs a Japanese reading dictionary (e.g. pykakasi, not a dependency).
    """
    return _key_udf(col.cast("string"))
